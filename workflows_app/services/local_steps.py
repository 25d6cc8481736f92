"""Steps that act inside mendhook: update the lead, start another workflow, wait."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from webhooks_app.errors import ErrorCode, ProcessingError
from workflows_app.connectors.base import StepContext, StepResult
from workflows_app.models import Lead, Workflow, WorkflowRun
from workflows_app.services.runs import RunAlreadyOpen, RunStartRefused, run_start


def lead_update(ctx: StepContext) -> StepResult:
    """Set the lead's status and merge custom fields (a re-run sets the same values again). Run
    inside the step's transaction (services/execution.py), so it is undone with the step."""
    status = ctx.step.config_value("status")
    custom = ctx.step.config_value("custom_fields")
    if not custom:
        # A status alone needs no read: one UPDATE (updated_at by hand: update() skips auto_now).
        changes = {"status": status} if status else {}
        Lead.objects.filter(id=ctx.lead.id).update(**changes, updated_at=timezone.now())
        return StepResult(provider_id=str(ctx.lead.id))
    # Merging reads the fields under a row lock, so a concurrent writer's keys are kept.
    with transaction.atomic(savepoint=False):
        lead = Lead.objects.select_for_update().get(id=ctx.lead.id)
        fields = ["updated_at", "custom_fields"]
        if status:
            lead.status = status
            fields.append("status")
        lead.custom_fields = {**(lead.custom_fields or {}), **custom}
        lead.save(update_fields=fields)
    return StepResult(provider_id=str(lead.id))


def workflow_start(ctx: StepContext) -> StepResult:
    """Start another workflow for the lead. One already open for the lead counts as done (this
    step re-run after its worker died finds the run it started); a refusal is permanent."""
    workflow_id = ctx.step.config_value("workflow_id")
    workflow = Workflow.objects.filter(id=workflow_id, organization_id=ctx.organization_id).first()
    if workflow is None:
        raise ProcessingError(
            f"workflow {workflow_id} does not exist in this organization", code=ErrorCode.WORKFLOW_START_REFUSED
        )
    parent = WorkflowRun.objects.get(id=ctx.run_id)
    try:
        child = run_start(workflow=workflow, lead=ctx.lead, started_by=f"workflow:{ctx.run_id}", parent_run=parent)
    except RunAlreadyOpen as exc:
        return StepResult(provider_id=str(exc.run.id))
    except RunStartRefused as exc:
        raise ProcessingError(
            f"could not start {workflow.name!r}: {exc}", code=ErrorCode.WORKFLOW_START_REFUSED
        ) from None
    return StepResult(provider_id=str(child.id))


def wait(ctx: StepContext) -> StepResult:
    """Done at once; the next step is due `minutes` later."""
    return StepResult(next_action_at=ctx.now + timedelta(minutes=int(ctx.step.config_value("minutes"))))
