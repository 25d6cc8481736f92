"""Processing leases kept alive by a heartbeat, so the healer can tell a dead worker from a slow one.

A claim holds its event until `claimed_until`. The lease is short (MENDHOOK_PROCESSING_LEASE_SECONDS)
so work orphaned by a dead worker is handed out again within about a minute, and a thread in the
worker process extends it every third of the lease while the attempt runs, so a slow but live
attempt is never taken over. The thread dies with its process: that is the whole point.
"""

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    """A heartbeat thread of its own for one claim (workflow runs); events share one per process
    (lease_kept below)."""

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


@dataclass
class _Claim:
    event_id: uuid.UUID
    task_id: str
    lease_seconds: float
    due: float  # monotonic time of the next renewal
    lost: threading.Event = field(default_factory=threading.Event)


class _ProcessHeartbeat:
    """One heartbeat thread per worker process renews every claim held in it.

    A thread started and joined for each event cost more than the local handler's own work;
    this one is started once (after the fork) and sleeps until the next renewal is due. The
    schedule is the per-attempt thread's: a claim is renewed a third of its lease after it was
    registered, then every third of the lease, until the attempt ends.
    """

    def __init__(self) -> None:
        self._claims: dict[int, _Claim] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def hold(self, claim: _Claim) -> int:
        with self._wake:
            if self._thread is None or self._pid != os.getpid():
                # A forked child inherits the parent's claims table but not its thread.
                self._claims = {}
                self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)
                self._pid = os.getpid()
                self._thread.start()
            key = id(claim)
            self._claims[key] = claim
            self._wake.notify()
        return key

    def release(self, key: int) -> None:
        with self._wake:
            self._claims.pop(key, None)

    def _run(self) -> None:
        while True:
            with self._wake:
                now = time.monotonic()
                due = [c for c in self._claims.values() if c.due <= now]
                if not due:
                    next_due = min((c.due for c in self._claims.values()), default=now + 60.0)
                    self._wake.wait(max(0.0, next_due - now))
                    continue
                for claim in due:
                    claim.due = now + claim.lease_seconds / 3
            for claim in due:
                self._renew(claim)
            # Renewals are rare: no connection is held between them.
            connections.close_all()

    def _renew(self, claim: _Claim) -> None:
        try:
            renewed = lease_renew(event_id=claim.event_id, task_id=claim.task_id, lease_seconds=claim.lease_seconds)
        except DatabaseError:
            # Nobody can take the claim over while the database is away either.
            logger.info("lease of event %s not renewed: database unavailable", claim.event_id)
            return
        if renewed:
            return
        # The outcome will not be recorded: the conditional UPDATE that records it finds another
        # claim holder and closes this attempt as claim_lost.
        with self._wake:
            if self._claims.get(id(claim)) is not claim:
                return  # the attempt ended while this renewal ran: its outcome released the claim
            del self._claims[id(claim)]
        claim.lost.set()
        report_failure(
            logger,
            "event %s: claim of task %s was taken over while it ran",
            claim.event_id,
            claim.task_id,
            event_id=claim.event_id,
            function="webhooks_app.services.leases.lease_kept",
            action="renew_lease",
        )


_heartbeat = _ProcessHeartbeat()


@contextmanager
def lease_kept(*, event_id: uuid.UUID, task_id: str) -> Iterator[threading.Event]:
    """Keep the claim of `task_id` on the event alive while the block runs; yields an Event set
    when the claim was lost."""
    lease_seconds = float(settings.MENDHOOK_PROCESSING_LEASE_SECONDS)
    claim = _Claim(event_id=event_id, task_id=task_id, lease_seconds=lease_seconds, due=0.0)
    claim.due = time.monotonic() + lease_seconds / 3
    key = _heartbeat.hold(claim)
    try:
        yield claim.lost
    finally:
        # No renewal after the attempt (a late one would find the claim released anyway).
        _heartbeat.release(key)
