"""Publishing intake's new events off the request thread.

Intake answers as soon as the event row commits: the row is its own outbox (stored `queued`),
so its message may follow a moment later. One daemon thread per process takes event ids from a
queue and publishes them in order. A broker refusal sets the event back to `received` for the
sweeper (dispatch.event_publish_new); ids still queued when a process dies are events `queued`
with no message, which events_heal_stuck hands out again (MENDHOOK_QUEUED_LOST_SECONDS). At a
graceful exit (gunicorn stopping a worker) the queue is drained first.
"""

import atexit
import logging
import os
import queue
import threading
import uuid

from celery._state import get_current_app  # what celery.current_app proxies to
from django.db import close_old_connections, connections

from webhooks_app.services.dispatch import event_publish_new

logger = logging.getLogger(__name__)

# How long a stopping process waits for its last ids to be published.
DRAIN_SECONDS = 10.0

_STOP = object()


class _Publisher:
    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def submit(self, event_id: uuid.UUID) -> None:
        # A forked child (gunicorn, Celery prefork) inherits no running thread: start its own.
        if self._thread is None or self._pid != os.getpid():
            with self._lock:
                if self._thread is None or self._pid != os.getpid():
                    self._queue = queue.SimpleQueue()
                    self._thread = threading.Thread(target=self._run, name="mendhook-publisher", daemon=True)
                    self._pid = os.getpid()
                    self._thread.start()
                    atexit.register(self.drain)
        # Celery's current app is per thread: the one the caller publishes with goes along.
        self._queue.put((event_id, get_current_app()))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            assert isinstance(item, tuple)
            event_id, app = item
            try:
                app.set_current()
                event_publish_new(event_id=event_id)
            except Exception:  # the thread must outlive any one event; beat heals that one
                logger.exception("publishing event %s failed; the healer will hand it out", event_id)
            finally:
                # This thread's connection is only used when the broker refuses; drop a broken one.
                close_old_connections()
        connections.close_all()

    def drain(self, timeout: float = DRAIN_SECONDS) -> bool:
        """Publish what is queued, then stop the thread. True when nothing was left behind."""
        thread = self._thread
        if thread is None or self._pid != os.getpid() or not thread.is_alive():
            return True
        self._queue.put(_STOP)
        thread.join(timeout)
        self._thread = None
        return not thread.is_alive()


_publisher = _Publisher()


def event_publish_soon(*, event_id: uuid.UUID) -> None:
    """Hand a just-committed event to this process's publisher thread; returns at once."""
    _publisher.submit(event_id)


def publisher_drain(timeout: float = DRAIN_SECONDS) -> bool:
    """Wait until every event handed over so far is published (tests, a stopping process)."""
    return _publisher.drain(timeout)
