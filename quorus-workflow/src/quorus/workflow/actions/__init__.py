"""Post-execution actions: ``onSuccess``/``onFailure`` steps that notify (webhooks, Slack,
email), clean up old files and roll back what a failed execution left behind."""

from quorus.workflow.actions.base import (
    ActionContext,
    ActionError,
    ProtocolOpener,
    ValidatingAction,
    WorkflowAction,
    default_protocol_opener,
    engine_protocol_opener,
    redact_url,
)
from quorus.workflow.actions.cleanup import CleanupAction
from quorus.workflow.actions.email import EmailAction, step_table
from quorus.workflow.actions.installed import InstalledActions, installed_actions, merge_actions
from quorus.workflow.actions.notify import NotifyAction
from quorus.workflow.actions.rollback import RollbackAction
from quorus.workflow.actions.runner import (
    BUILTIN_ACTIONS,
    describe_target,
    run_actions,
    validate_action,
)
from quorus.workflow.actions.settings import ActionSettings

__all__ = [
    "BUILTIN_ACTIONS",
    "ActionContext",
    "ActionError",
    "ActionSettings",
    "CleanupAction",
    "EmailAction",
    "InstalledActions",
    "NotifyAction",
    "ProtocolOpener",
    "RollbackAction",
    "ValidatingAction",
    "WorkflowAction",
    "default_protocol_opener",
    "describe_target",
    "engine_protocol_opener",
    "installed_actions",
    "merge_actions",
    "redact_url",
    "run_actions",
    "step_table",
    "validate_action",
]
