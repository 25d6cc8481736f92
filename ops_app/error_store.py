"""Writing occurrences of errors into their groups: the upsert, the pause after the database
refused a connection, and the writer thread that commits apart from the caller's transaction.

Imported (through ops_app.errors) by logging configuration before apps are ready: models are
imported inside functions only."""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, InterfaceError, OperationalError, connections, transaction

if TYPE_CHECKING:
    from django.db.models import Case

# Failures of the recorder itself go here: the console and Sentry, never back into the recorder.
fallback_logger = logging.getLogger("ops_app.errors")

# After the database refused a connection, skip writes for this long instead of making every
# logged warning wait for a connect timeout during an outage.
PAUSE_AFTER_CONNECTION_ERROR_SECONDS = 10.0


@dataclass(frozen=True)
class Occurrence:
    fingerprint: str
    function: str
    action: str
    error_code: str
    logger: str
    severity: str
    message: str
    stack: str
    request_payload: Any
    organization_id: int | None
    event_id: uuid.UUID | None
    workflow_run_id: str
    lead_id: str
    campaign_id: str
    seen_at: datetime


_paused_until = 0.0


def persist_safely(occurrence: Occurrence) -> None:
    global _paused_until
    if time.monotonic() < _paused_until:
        fallback_logger.warning("database unavailable; not recorded: %s: %s", occurrence.function, occurrence.message)
        return
    try:
        _persist(occurrence)
    except (OperationalError, InterfaceError):
        _paused_until = time.monotonic() + PAUSE_AFTER_CONNECTION_ERROR_SECONDS
        fallback_logger.warning(
            "could not record error from %s: %s", occurrence.function, occurrence.message[:500], exc_info=True
        )
    except Exception:
        fallback_logger.warning(
            "could not record error from %s: %s", occurrence.function, occurrence.message[:500], exc_info=True
        )


def _severity_at_least(severity: str) -> Case:
    from django.db.models import Case, F, Value, When

    from ops_app.models import SEVERITY_RANK

    rank = SEVERITY_RANK.get(severity, 0)  # type: ignore[call-overload]
    higher = [s for s, r in SEVERITY_RANK.items() if r > rank]
    return Case(When(severity__in=higher, then=F("severity")), default=Value(severity))


def _persist(occurrence: Occurrence) -> None:
    """Upsert into the group: a conditional UPDATE that counts the occurrence, else an INSERT;
    an INSERT that loses a race with another process's INSERT (IntegrityError on the unique
    fingerprint) goes back to the UPDATE. Portable across PostgreSQL and SQLite."""
    from django.db.models import F

    from ops_app.models import AuditAct, AuditEntry, AuditVia, ErrorRecord

    values = {k: v for k, v in asdict(occurrence).items() if k not in ("fingerprint", "severity", "seen_at")}
    repeat = {
        **values,
        "occurrences": F("occurrences") + 1,
        "last_seen_at": occurrence.seen_at,
        "severity": _severity_at_least(occurrence.severity),
        "updated_at": occurrence.seen_at,
    }
    group = ErrorRecord.objects.filter(fingerprint=occurrence.fingerprint)
    for _ in range(3):
        with transaction.atomic():
            reopened = group.filter(resolved=True).update(
                **repeat, resolved=False, resolved_at=None, resolved_by=None, resolution_note=""
            )
            if reopened:
                # No one ran an act: the UPDATE above reopened the group, so the audit of the
                # recurrence is written here, in the same transaction.
                AuditEntry.objects.record(
                    target=group.get(),
                    actor_label="system",
                    via=AuditVia.SYSTEM,
                    act=AuditAct.RECURRED,
                    note=f"Happened again: {occurrence.message[:500]}",
                    status_before="resolved",
                    status_after="open",
                    created_at=occurrence.seen_at,
                )
                return
        if group.update(**repeat):
            return
        try:
            with transaction.atomic():
                ErrorRecord.objects.create(
                    fingerprint=occurrence.fingerprint,
                    severity=occurrence.severity,
                    first_seen_at=occurrence.seen_at,
                    last_seen_at=occurrence.seen_at,
                    **values,
                )
            return
        except IntegrityError:
            continue
    raise RuntimeError(f"could not upsert error group {occurrence.fingerprint}")


class DetachedWriter:
    """Writes occurrences on its own thread, hence its own database connection and transaction."""

    def __init__(self, maxsize: int = 1000) -> None:
        self.maxsize = maxsize
        self._reset()
        # A forked child (a Celery prefork worker) must not inherit the parent's thread or a
        # lock the parent held at the fork.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.Queue[Occurrence] = queue.Queue(self.maxsize)
        self._thread: threading.Thread | None = None

    def submit(self, occurrence: Occurrence) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="error-record-writer", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(occurrence)
        except queue.Full:
            fallback_logger.warning("error record queue full; not recorded: %s", occurrence.message[:500])

    def _run(self) -> None:
        while True:
            occurrence = self._queue.get()
            try:
                persist_safely(occurrence)
            finally:
                self._queue.task_done()
                if self._queue.empty():
                    # Holding no connection while idle also lets a test run drop its database.
                    connections.close_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted is written; True if it was within the timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks


detached_writer = DetachedWriter()
