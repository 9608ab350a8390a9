"""Post-execution actions: ``onSuccess``/``onFailure`` steps that notify (webhooks, Slack,
email), clean up old files and roll back what a failed execution left behind."""

from quorus.workflow.actions.base import (
    ActionContext,
    ActionError,
    ProtocolOpener,
    ValidatingAction,
    WorkflowAction,
    default_protocol_opener,
    redact_url,
)
from quorus.workflow.actions.cleanup import CleanupAction
from quorus.workflow.actions.email import EmailAction, step_table
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
    "NotifyAction",
    "ProtocolOpener",
    "RollbackAction",
    "ValidatingAction",
    "WorkflowAction",
    "default_protocol_opener",
    "describe_target",
    "redact_url",
    "run_actions",
    "step_table",
    "validate_action",
]
