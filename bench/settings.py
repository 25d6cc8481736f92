"""Bench-only settings: the product settings plus a no-op view and the baseline Celery tasks.

Nothing else changes, so gunicorn and the worker run exactly the product configuration.
"""

import copy
import os

from config.queues import TASK_ROUTES, Queue
from config.settings import *  # noqa: F403
from config.settings import DATABASES

ROOT_URLCONF = "bench.urls"

# The baseline task lives here, never in the product's task modules.
CELERY_IMPORTS = ["bench.tasks"]
# Same queue as the real work (webhooks), so both measure the same consumer.
CELERY_TASK_ROUTES = {
    **TASK_ROUTES,
    "bench.tasks.noop": {"queue": Queue.WEBHOOKS.value},
    "bench.tasks.peer_process": {"queue": Queue.WEBHOOKS.value},
    # The raw-POST baseline of the outbound phase, on the queue deliveries take.
    "bench.tasks.post": {"queue": Queue.OUTBOUND.value},
}

# The million phase's database (bench/million.py): the bench process seeds it through this
# alias; its gunicorn and worker get it as DATABASE_URL, i.e. as their "default".
if os.environ.get("BENCH_MILLION_DATABASE_NAME"):
    DATABASES["million"] = {**copy.deepcopy(DATABASES["default"]), "NAME": os.environ["BENCH_MILLION_DATABASE_NAME"]}
