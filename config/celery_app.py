"""The Celery application. Settings come from Django settings under the CELERY_ namespace."""

import logging
import math
import os
from datetime import datetime
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_ready

from config.brokers import dead_letter_queue, is_amqp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger(__name__)


class MendhookCelery(Celery):
    def send_task(  # type: ignore[override]
        self, name: str, args: Any = None, kwargs: Any = None, countdown: float | None = None,
        eta: datetime | None = None, **options: Any,
    ) -> Any:  # fmt: skip
        # On RabbitMQ a countdown rides Celery's native delayed delivery (quorum queues), whose
        # routing counts whole seconds: it truncates 0.5 s to 0 and refuses it, and 1.5 s would
        # arrive early and be held by the worker. Round up instead: retries come a little late,
        # never early, and never fail to publish.
        if (countdown or eta) and is_amqp(self.conf.broker_url):
            if eta is not None:
                countdown = (eta - self.now()).total_seconds()
                eta = None
            countdown = math.ceil(countdown) if countdown and countdown > 0 else None
        return super().send_task(name, args, kwargs, countdown, eta, **options)


app = MendhookCelery("mendhook")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _declare_dead_letters(sender: Any, **kwargs: Any) -> None:
    # RabbitMQ moves messages past the delivery limit to this exchange and drops them when no
    # queue is bound to it; workers declare the queues they consume, not this one, so here.
    celery: Celery = sender.app
    if not is_amqp(celery.conf.broker_url):
        return
    try:
        with celery.connection_for_write() as conn, conn.channel() as channel:
            dead_letter_queue()(channel).declare()
    except Exception:
        logger.warning("could not declare the dead-letter queue", exc_info=True)


@task_prerun.connect
@task_postrun.connect
def _retire_old_connections(**kwargs: Any) -> None:
    # With CELERY_DB_REUSE_MAX the fixup keeps connections across tasks; retire the ones past
    # CONN_MAX_AGE or broken, as Django does around each request.
    from django.db import close_old_connections

    close_old_connections()
