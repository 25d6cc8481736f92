"""Celery tasks: thin wrappers that take ids and call one service each."""

import os
import uuid

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from workflows_app.services import dispatch, execution, healing


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    # Only for the database being unreachable (as webhooks_app.tasks.process_event): the retry
    # keeps the task id, so a claim taken just before the connection dropped is its to resume.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=40,
)
def execute_run_step(self: Task[[str], str | None], run_id: str) -> str | None:
    # Step outcomes are not retried here: the strategies schedule the next try in the database
    # (next_action_at), visible in the delivery log and safe across broker restarts.
    worker = f"{self.request.hostname or 'worker'}:{os.getpid()}"
    outcome = execution.run_step_execute(run_id=uuid.UUID(run_id), task_id=str(self.request.id), worker=worker)
    return str(outcome) if outcome else None


@shared_task(ignore_result=True)
def dispatch_due_runs() -> int:
    return dispatch.runs_dispatch_due()


@shared_task(ignore_result=True)
def heal_stuck_runs() -> int:
    return healing.runs_heal_stuck()
