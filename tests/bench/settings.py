"""Bench-only settings: the product settings plus a no-op view and a no-op Celery task.

Nothing else changes, so gunicorn and the worker run exactly the product configuration.
"""

from config.queues import TASK_ROUTES, Queue
from config.settings import *  # noqa: F403

ROOT_URLCONF = "tests.bench.urls"

# The baseline task lives here, never in the product's task modules.
CELERY_IMPORTS = ["tests.bench.tasks"]
# Same queue as the real work (webhooks), so both measure the same consumer.
CELERY_TASK_ROUTES = {**TASK_ROUTES, "tests.bench.tasks.noop": {"queue": Queue.WEBHOOKS.value}}
