"""Disposition actions of calls: retrying the failed ones.

STAND-IN for the integrator: the call handlers' branch owns this module and its real
`call_retry_failed_actions` (which re-runs the failed ActionExecutions). This version only keeps
the operators' act honest until then: it refuses when nothing failed, and refuses to pretend a
re-run it cannot do. Keep the names (CallActionsRefused, CallActionsChange, the keyword call_id)
or adjust ops_app.acts.workflows to the real ones."""

from dataclasses import dataclass
from typing import Any

from workflows_app.models import ActionExecution, ActionExecutionStatus, CallLog


class CallActionsRefused(Exception):
    """Nothing to retry on the call (or the retry is not possible). Safe to show."""


@dataclass(frozen=True)
class CallActionsChange:
    call: CallLog
    status_before: str
    status_after: str


def call_retry_failed_actions(*, call_id: int, **_: Any) -> CallActionsChange:
    failed = ActionExecution.objects.filter(call_id=call_id, status=ActionExecutionStatus.FAILED).count()
    if not failed:
        raise CallActionsRefused("no failed actions to retry")
    raise CallActionsRefused("re-running disposition actions is not available in this build")
