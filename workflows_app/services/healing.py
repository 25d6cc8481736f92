"""Self-healing (seed healFailedWorkflows): a step left executing by a worker that vanished goes
back to pending, due now. Re-executing it is safe: the next attempt sends the same idempotency
key (models.runs.TRY_CONTINUES), so the provider answers with the call or message it made the
first time instead of making a second."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from webhooks_app.reporting import report_failure
from workflows_app.models import RunStatus, StepExecution, StepOutcome, StepStatus, WorkflowRun
from workflows_app.services.dispatch import run_publish

logger = logging.getLogger(__name__)

HEAL_BATCH = 500


def runs_heal_stuck(*, now: datetime | None = None) -> int:
    """Hand out again every step executing with an expired lease, or (a row without a lease)
    untouched for WORKFLOW_STUCK_SECONDS. Safe to run twice at once: heal is one conditional
    UPDATE. Returns how many it healed."""
    now = now or timezone.now()
    stuck_before = now - timedelta(seconds=settings.WORKFLOW_STUCK_SECONDS)
    stuck = Q(claimed_until__lt=now) | Q(claimed_until__isnull=True, updated_at__lt=stuck_before)
    ids = list(
        WorkflowRun.objects.filter(stuck, status=RunStatus.ACTIVE, step_status=StepStatus.EXECUTING).values_list(
            "id", flat=True
        )[:HEAL_BATCH]
    )
    healed = 0
    for run_id in ids:
        with transaction.atomic():
            if not WorkflowRun.objects.heal(run_id=run_id, now=now, stuck_before=stuck_before):
                continue  # its worker finished after all, or another healer was first
            # The attempt its worker never finished; the next attempt continues the same try.
            StepExecution.objects.filter(run_id=run_id, finished_at__isnull=True).update(
                outcome=StepOutcome.WORKER_LOST, finished_at=now
            )
        report_failure(
            logger,
            "workflow run %s: its step was executing on a worker that is gone; handed out again",
            run_id,
            workflow_run_id=run_id,
            function="workflows_app.services.healing.runs_heal_stuck",
            action="heal",
        )
        run_publish(run_id=run_id)
        healed += 1
    return healed
