"""Handing due runs to the workers: beat's dispatcher, and the direct publish of a run whose
step is due at once (a start, the next step, a short backoff). Both mark the run
(`dispatched_at`) before publishing, so no run is published twice; the claim in the task decides
anyway, so a second message (a lost one re-sent) would do nothing twice."""

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from config.publishing import publish
from webhooks_app.reporting import report_failure
from workflows_app.models import WorkflowRun

logger = logging.getLogger(__name__)

# Published by name (config.publishing): the tasks module imports the services, never the reverse.
EXECUTE_STEP_TASK = "workflows_app.tasks.execute_run_step"


def run_publish(*, run_id: uuid.UUID, countdown: float | None = None) -> bool:
    """Publish one run's step now (or after `countdown` seconds). Never raises: a run not
    published stays due and beat's dispatcher publishes it."""
    now = timezone.now()
    if not WorkflowRun.objects.mark_dispatched(run_id=run_id, now=now):
        return False
    return _publish(run_id, marked_at=now, countdown=countdown)


def run_publish_marked(*, run_id: uuid.UUID, marked_at: datetime, countdown: float | None = None) -> bool:
    """Publish a run whose dispatch marker the caller set (to `marked_at`) in its own move, as
    the outcome of a step does for the next one. Never raises, as run_publish."""
    return _publish(run_id, marked_at=marked_at, countdown=countdown)


def _publish(run_id: uuid.UUID, *, marked_at: datetime, countdown: float | None = None) -> bool:
    try:
        publish(EXECUTE_STEP_TASK, str(run_id), countdown=countdown)
    except Exception:  # noqa: BLE001 - any broker error means "not published"; the dispatcher retries
        report_failure(
            logger,
            "could not publish workflow run %s; the dispatcher will",
            run_id,
            workflow_run_id=run_id,
            function="workflows_app.services.dispatch",
            action="publish",
            exc_info=True,
        )
        WorkflowRun.objects.unmark_dispatched(run_id=run_id, marked_at=marked_at)
        return False
    return True


def runs_dispatch_due(*, now: datetime | None = None) -> int:
    """Beat's dispatcher: publish every due run not yet published, in batches. Safe to run
    twice at once (WorkflowRunQuerySet.dispatch_batch). Returns how many it published."""
    now = now or timezone.now()
    batch = settings.WORKFLOW_DISPATCH_BATCH
    redispatch_before = now - timedelta(seconds=settings.WORKFLOW_REDISPATCH_SECONDS)
    published = 0
    for _ in range(settings.WORKFLOW_DISPATCH_MAX_BATCHES):
        ids = WorkflowRun.objects.dispatch_batch(now=now, limit=batch, redispatch_before=redispatch_before)
        for run_id in ids:
            published += _publish(run_id, marked_at=now)
        if len(ids) < batch:
            break
    return published
