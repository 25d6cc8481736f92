"""The baseline Celery tasks: same options as the product task each is compared with, and the
least body that does the same kind of work."""

import os
import threading

import httpx
from celery import Task, shared_task


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True, name="bench.tasks.noop")
def noop(self: Task[[int], None], n: int) -> None:
    return None


@shared_task(ignore_result=True, name="bench.tasks.peer_process")
def peer_process(event_id: str) -> None:
    """What the peer intake (bench/peer.py) enqueues; the bench only counts its messages."""
    return None


_clients: dict[int, httpx.Client] = {}
_clients_lock = threading.Lock()


def _client() -> httpx.Client:
    # As webhooks_app.services.outbound.delivery: one pooled keep-alive client per process.
    pid = os.getpid()
    client = _clients.get(pid)
    if client is None:
        with _clients_lock:
            client = _clients.get(pid) or httpx.Client(follow_redirects=False)
            _clients[pid] = client
    return client


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True, name="bench.tasks.post")
def post(self: Task[[str, dict[str, str], str], None], url: str, headers: dict[str, str], body: str) -> None:
    """One raw POST of an already signed body: the outbound phase's baseline (no claim, no
    signing, no attempt log)."""
    _client().post(url, content=body.encode(), headers=headers, timeout=10.0).raise_for_status()
