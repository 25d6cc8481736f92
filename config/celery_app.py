"""The Celery application. Settings come from Django settings under the CELERY_ namespace."""

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("mendhook")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _retire_old_connections(**kwargs: Any) -> None:
    # With CELERY_DB_REUSE_MAX the fixup keeps connections across tasks; retire the ones past
    # CONN_MAX_AGE or broken, as Django does around each request.
    from django.db import close_old_connections

    close_old_connections()
