"""The baseline Celery tasks: same options as webhooks_app.tasks.process_event, empty bodies."""

from celery import Task, shared_task


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True, name="bench.tasks.noop")
def noop(self: Task[[int], None], n: int) -> None:
    return None


@shared_task(ignore_result=True, name="bench.tasks.peer_process")
def peer_process(event_id: str) -> None:
    """What the peer intake (bench/peer.py) enqueues; the bench only counts its messages."""
    return None
