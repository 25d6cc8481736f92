"""Building workflows for tests and driving their runs: in this process through the execution
service, or by the real worker (with beat's dispatcher run here, since no beat runs in tests)."""

import itertools
import time
from typing import Any

from django.utils import timezone

from tests.factories import LeadFactory, WorkflowFactory, WorkflowStepFactory
from tests.support.waiting import wait_for
from webhooks_app.models import Organization
from workflows_app.models import Lead, RunStatus, StepOutcome, Workflow, WorkflowRun
from workflows_app.services.dispatch import runs_dispatch_due
from workflows_app.services.execution import run_step_execute

_task_ids = itertools.count(1)


def workflow_of(organization: Organization, *steps: dict[str, Any], **fields: Any) -> Workflow:
    """A workflow with `steps` (each the WorkflowStep fields, action_type at least), in order."""
    workflow = WorkflowFactory(organization=organization, **fields)
    for position, step in enumerate(steps, start=1):
        WorkflowStepFactory(workflow=workflow, position=position, **step)
    return workflow


def lead_of(organization: Organization, **fields: Any) -> Lead:
    return LeadFactory(organization=organization, **fields)


def execute(run: WorkflowRun, *, wait_until_due: bool = True) -> StepOutcome | None:
    """Execute the run's current step once in this process, as a worker's task would. With
    `wait_until_due`, first wait out a short backoff (never a long one: tests control time)."""
    run.refresh_from_db()
    if wait_until_due and run.next_action_at is not None:
        pause = (run.next_action_at - timezone.now()).total_seconds()
        assert pause < 10, f"the step is due in {pause:.0f}s; move next_action_at to test that"
        if pause > 0:
            time.sleep(pause)
    outcome = run_step_execute(run_id=run.id, task_id=f"test-task-{next(_task_ids)}", worker="test:0")
    run.refresh_from_db()
    return outcome


def time_passes(run: WorkflowRun) -> None:
    """The scheduled retry's time has come (instead of waiting an hour)."""
    WorkflowRun.objects.filter(id=run.id).update(next_action_at=timezone.now())


def settle_run(run_id: Any, statuses: set[str], timeout: float = 30.0) -> WorkflowRun:
    """Wait for the real worker to bring the run to one of `statuses`, running beat's dispatcher
    here meanwhile (due runs whose message was not published at once)."""

    def done() -> WorkflowRun | None:
        runs_dispatch_due()
        run = WorkflowRun.objects.get(id=run_id)
        return run if run.status in statuses and run.step_status != "executing" else None

    return wait_for(done, timeout=timeout, interval=0.2, message=f"run {run_id} to reach {statuses}")


OPEN_OR_DONE = {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.NEEDS_REVIEW, RunStatus.CANCELLED}
