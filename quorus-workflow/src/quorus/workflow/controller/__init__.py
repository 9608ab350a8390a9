"""Workflow executions on the controller quorum: the replicated state module (executions,
registrations, trigger bookkeeping), the leader's driver that turns steps into jobs, and the
REST routes under ``/v1/workflows``."""

from quorus.workflow.controller.commands import (
    AdvanceExecution,
    CancelExecution,
    PauseExecution,
    RecordActions,
    RegisterWorkflow,
    ResumeExecution,
    StepEnded,
    SubmitExecution,
    TriggerCleared,
    TriggerFired,
    UnregisterWorkflow,
)
from quorus.workflow.controller.driver import WorkflowExtension
from quorus.workflow.controller.jobs import job_id_for
from quorus.workflow.controller.records import WorkflowResult
from quorus.workflow.controller.state import MAX_DONE, WorkflowStateModule

__all__ = [
    "MAX_DONE",
    "AdvanceExecution",
    "CancelExecution",
    "PauseExecution",
    "RecordActions",
    "RegisterWorkflow",
    "ResumeExecution",
    "StepEnded",
    "SubmitExecution",
    "TriggerCleared",
    "TriggerFired",
    "UnregisterWorkflow",
    "WorkflowExtension",
    "WorkflowResult",
    "WorkflowStateModule",
    "job_id_for",
]
