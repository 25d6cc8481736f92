"""The lease of an executing step, kept alive by the same heartbeat as events' leases
(webhooks_app/services/leases.py): a worker that dies stops renewing, and the healer hands the
step out again one lease later."""

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from webhooks_app.reporting import report_failure
from webhooks_app.services.leases import LeaseHeartbeat
from workflows_app.models import WorkflowRun

logger = logging.getLogger(__name__)


class RunLeaseHeartbeat(LeaseHeartbeat):
    def __init__(self, *, run_id: uuid.UUID, task_id: str, lease_seconds: float) -> None:
        super().__init__(event_id=run_id, task_id=task_id, lease_seconds=lease_seconds)
        self.name = f"run-lease-heartbeat-{run_id}"

    def renew(self) -> bool:
        until = timezone.now() + timedelta(seconds=self.lease_seconds)
        return WorkflowRun.objects.renew_claim(run_id=self.event_id, task_id=self.task_id, lease_until=until)

    def report_lost(self) -> None:
        report_failure(
            logger,
            "workflow run %s: claim of task %s was taken over while its step ran",
            self.event_id,
            self.task_id,
            workflow_run_id=self.event_id,
            function="workflows_app.services.leases.RunLeaseHeartbeat",
            action="renew_lease",
        )


@contextmanager
def run_lease_kept(*, run_id: uuid.UUID, task_id: str) -> Iterator[RunLeaseHeartbeat]:
    heartbeat = RunLeaseHeartbeat(run_id=run_id, task_id=task_id, lease_seconds=settings.WORKFLOW_LEASE_SECONDS)
    heartbeat.start()
    try:
        yield heartbeat
    finally:
        heartbeat.stop()
        heartbeat.join(timeout=10)
