"""The baseline Celery task: same options as webhooks_app.tasks.process_event, empty body."""

from celery import Task, shared_task


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True, name="bench.tasks.noop")
def noop(self: Task[[int], None], n: int) -> None:
    return None
