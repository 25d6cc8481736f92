"""Starting workflow runs: the checks before a start (seed scenario 2) and the start itself, one
open run per (workflow, lead) even under concurrent starts (seed scenario 5)."""

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from workflows_app.models import (
    NEEDS_EMAIL,
    NEEDS_PHONE,
    OPEN_RUN_STATUSES,
    Lead,
    RunStatus,
    StepStatus,
    Workflow,
    WorkflowRun,
    phone_e164,
)
from workflows_app.services.dispatch import run_publish


class RunStartRefused(Exception):
    """The run cannot start; the message says why and is safe to show (API 400, admin)."""


class RunAlreadyOpen(Exception):
    """An open run of the workflow exists for the lead (API 409 with that run)."""

    def __init__(self, run: WorkflowRun) -> None:
        super().__init__(f"workflow run {run.id} is already {run.status} for this lead")
        self.run = run


@dataclass(frozen=True)
class StartProblem:
    field: str
    message: str


def run_start_problems(*, workflow: Workflow, lead: Lead) -> list[StartProblem]:
    """Everything that would make a run of `workflow` for `lead` fail before it began."""
    problems: list[StartProblem] = []
    if workflow.organization_id != lead.organization_id:
        problems.append(StartProblem("lead", "the lead belongs to another organization than the workflow"))
    if not workflow.active:
        problems.append(StartProblem("workflow", f"workflow {workflow.name!r} is inactive"))
    action_types = set(workflow.steps.values_list("action_type", flat=True))
    if not action_types:
        problems.append(StartProblem("workflow", f"workflow {workflow.name!r} has no steps"))
    if action_types & NEEDS_PHONE:
        if not lead.phone:
            problems.append(
                StartProblem("lead", f"lead {lead.name!r} has no phone number and the workflow calls or texts")
            )
        else:
            try:
                phone_e164(lead.phone)
            except ValueError as exc:
                problems.append(StartProblem("lead", f"lead {lead.name!r}: {exc}; the workflow calls or texts"))
    if action_types & NEEDS_EMAIL and not lead.email:
        problems.append(StartProblem("lead", f"lead {lead.name!r} has no email address and the workflow sends email"))
    return problems


def run_start(*, workflow: Workflow, lead: Lead, started_by: str, parent_run: WorkflowRun | None = None) -> WorkflowRun:
    """Start a run at the first step, due now. Raises RunStartRefused (nothing stored) or
    RunAlreadyOpen. Concurrent starts: the partial unique constraint lets one insert win; the
    others find its run."""
    problems = run_start_problems(workflow=workflow, lead=lead)
    if problems:
        raise RunStartRefused("; ".join(p.message for p in problems))
    first = workflow.steps.order_by("position").values_list("position", flat=True).first()
    now = timezone.now()
    try:
        with transaction.atomic():
            run = WorkflowRun.objects.create(
                organization_id=workflow.organization_id,
                workflow=workflow,
                lead=lead,
                current_position=first or 1,
                status=RunStatus.ACTIVE,
                step_status=StepStatus.PENDING,
                next_action_at=now,
                started_by=started_by[:200],
                parent_run=parent_run,
                updated_at=now,
            )
            # Its first step is due now: published on commit, not at beat's next dispatch.
            transaction.on_commit(lambda: run_publish(run_id=run.id))
            return run
    except IntegrityError:
        existing = WorkflowRun.objects.filter(workflow=workflow, lead=lead, status__in=OPEN_RUN_STATUSES).first()
        if existing is None:  # the other run ended between our insert and this read
            raise
        raise RunAlreadyOpen(existing) from None
