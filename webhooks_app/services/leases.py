"""Processing leases kept alive by a heartbeat, so the healer can tell a dead worker from a slow one.

A claim holds its event until `claimed_until`. The lease is short (MENDHOOK_PROCESSING_LEASE_SECONDS)
so work orphaned by a dead worker is handed out again within about a minute, and a thread in the
worker process extends it every third of the lease while the attempt runs, so a slow but live
attempt is never taken over. The thread dies with its process: that is the whole point.
"""

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connections
from django.utils import timezone

from webhooks_app.models import WebhookEvent
from webhooks_app.reporting import report_failure

logger = logging.getLogger(__name__)


def lease_renew(*, event_id: uuid.UUID, task_id: str, lease_seconds: float) -> bool:
    """Extend the claim if this task still holds it. False means the claim was lost."""
    until = timezone.now() + timedelta(seconds=lease_seconds)
    return WebhookEvent.objects.renew_claim(event_id=event_id, task_id=task_id, lease_until=until)


class LeaseHeartbeat(threading.Thread):
    def __init__(self, *, event_id: uuid.UUID, task_id: str, lease_seconds: float) -> None:
        super().__init__(name=f"lease-heartbeat-{event_id}", daemon=True)
        self.event_id = event_id
        self.task_id = task_id
        self.lease_seconds = lease_seconds
        self.lost = threading.Event()
        self._done = threading.Event()

    def run(self) -> None:
        try:
            # Renewing at a third of the lease leaves two missed beats (a slow query, a database
            # restart) before the claim runs out.
            while not self._done.wait(self.lease_seconds / 3):
                try:
                    renewed = self.renew()
                except DatabaseError:
                    # Nobody can take the claim over while the database is away either.
                    logger.info("lease of %s not renewed: database unavailable", self.name)
                    continue
                if not renewed:
                    # The outcome will not be recorded: the conditional UPDATE that records it
                    # finds another claim holder and closes this attempt as claim_lost.
                    self.lost.set()
                    self.report_lost()
                    return
        finally:
            # Django connections are per thread; this one must not outlive the heartbeat.
            connections.close_all()

    def renew(self) -> bool:
        """Extend the lease; False when the claim was lost. Workflow runs' heartbeat overrides it."""
        return lease_renew(event_id=self.event_id, task_id=self.task_id, lease_seconds=self.lease_seconds)

    def report_lost(self) -> None:
        report_failure(
            logger,
            "event %s: claim of task %s was taken over while it ran",
            self.event_id,
            self.task_id,
            event_id=self.event_id,
            function="webhooks_app.services.leases.LeaseHeartbeat",
            action="renew_lease",
        )

    def stop(self) -> None:
        self._done.set()


@contextmanager
def lease_kept(*, event_id: uuid.UUID, task_id: str) -> Iterator[LeaseHeartbeat]:
    """Keep the claim of `task_id` on the event alive while the block runs."""
    heartbeat = LeaseHeartbeat(
        event_id=event_id, task_id=task_id, lease_seconds=settings.MENDHOOK_PROCESSING_LEASE_SECONDS
    )
    heartbeat.start()
    try:
        yield heartbeat
    finally:
        heartbeat.stop()
        # No heartbeat outlives its attempt (a late renewal would find the claim released anyway).
        heartbeat.join(timeout=10)
