"""Models of outreach: leads, workflows and their runs, calls and their dispositions."""

from workflows_app.models.calls import (
    ActionExecution,
    ActionExecutionStatus,
    CallLog,
    CallProvider,
    CallStatus,
    Disposition,
    DispositionAction,
    DispositionActionType,
)
from workflows_app.models.leads import Lead, LeadStatus, phone_e164
from workflows_app.models.runs import (
    DUE_STEP_STATUSES,
    OPEN_RUN_STATUSES,
    RUN_TRANSITIONS,
    TRY_CONTINUES,
    IllegalRunTransition,
    RunStatus,
    StepExecution,
    StepOutcome,
    StepStatus,
    WorkflowRun,
)
from workflows_app.models.workflows import NEEDS_EMAIL, NEEDS_PHONE, ActionType, FailureStrategy, Workflow, WorkflowStep

__all__ = [
    "DUE_STEP_STATUSES",
    "NEEDS_EMAIL",
    "NEEDS_PHONE",
    "OPEN_RUN_STATUSES",
    "RUN_TRANSITIONS",
    "TRY_CONTINUES",
    "ActionExecution",
    "ActionExecutionStatus",
    "ActionType",
    "CallLog",
    "CallProvider",
    "CallStatus",
    "Disposition",
    "DispositionAction",
    "DispositionActionType",
    "FailureStrategy",
    "IllegalRunTransition",
    "Lead",
    "LeadStatus",
    "RunStatus",
    "StepExecution",
    "StepOutcome",
    "StepStatus",
    "Workflow",
    "WorkflowRun",
    "WorkflowStep",
    "phone_e164",
]
