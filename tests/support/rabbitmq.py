"""RabbitMQ for the tests: a vhost of the test database's name (so concurrent runs on one machine
never share queues), a Celery app publishing to it, and purging only the project's queues there.

RabbitMQ must answer at RABBITMQ_HOST:RABBITMQ_PORT (127.0.0.1:5672, guest/guest by default,
as on CI): a missing broker fails the tests that need it, never skips them. `make bench` uses
the same helpers for its RabbitMQ run.
"""

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import amqp.exceptions
import kombu
import kombu.exceptions
from celery import Celery
from django.conf import settings

from config.brokers import DEAD_LETTER_QUEUE, broker_options
from config.celery_app import MendhookCelery, app
from config.queues import Queue

HOST = os.environ.get("RABBITMQ_HOST", "127.0.0.1")
PORT = int(os.environ.get("RABBITMQ_PORT", "5672"))
USER = os.environ.get("RABBITMQ_USER", "guest")
PASSWORD = os.environ.get("RABBITMQ_PASSWORD", "guest")


def amqp_url(vhost: str, *, port: int = PORT) -> str:
    return f"amqp://{USER}:{PASSWORD}@{HOST}:{port}/{quote(vhost, safe='')}"


class RabbitMQUnavailable(Exception):
    """No RabbitMQ, or no vhost for us on it: the tests fail (never skip), the bench stops."""


def _answers(url: str) -> bool:
    try:
        with kombu.Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=0)
        return True
    except (amqp.exceptions.NotAllowed, amqp.exceptions.AccessRefused):
        return False  # the broker is there; the vhost is not, or not open to this user
    except (kombu.exceptions.OperationalError, amqp.exceptions.AMQPError, OSError) as exc:
        raise RabbitMQUnavailable(f"RabbitMQ does not answer at {HOST}:{PORT} ({exc!r}); .ci/run starts it") from exc


def vhost_ensure(vhost: str) -> None:
    """Create the vhost with rabbitmqctl (root, or sudo without a password) unless it answers."""
    if _answers(amqp_url(vhost)):
        return
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    for args in (["add_vhost", vhost], ["set_permissions", "-p", vhost, USER, ".*", ".*", ".*"]):
        done = subprocess.run([*prefix, ctl, "-q", *args], capture_output=True, text=True, timeout=60)
        if done.returncode != 0 and "already" not in done.stderr + done.stdout:
            raise RabbitMQUnavailable(f"cannot create the RabbitMQ vhost {vhost!r}: {done.stderr or done.stdout}")
    if not _answers(amqp_url(vhost)):
        raise RabbitMQUnavailable(f"the RabbitMQ vhost {vhost!r} still refuses {USER}")


@dataclass
class RabbitMQ:
    vhost: str
    url: str
    app: Celery

    def url_at(self, port: int) -> str:
        """The test vhost's URL through another port (a TcpProxy in front of RabbitMQ)."""
        return amqp_url(self.vhost, port=port)

    def purge(self) -> None:
        """Empty the project's queues in the test vhost (and nothing else)."""
        with self.app.connection_for_write() as conn:
            for name in [q.value for q in Queue] + [DEAD_LETTER_QUEUE]:
                # A channel each: RabbitMQ closes a channel whose purge names a missing queue.
                channel: Any = conn.channel()  # kombu's channel type does not declare these
                try:
                    channel.queue_purge(name)
                except amqp.exceptions.NotFound:
                    pass
                finally:
                    with contextlib.suppress(Exception):
                        channel.close()

    def depth(self, queue: str) -> int:
        with self.app.connection_for_read() as conn:
            channel: Any = conn.channel()
            try:
                return int(channel.queue_declare(queue=queue, passive=True).message_count)
            except amqp.exceptions.NotFound:
                return 0
            finally:
                with contextlib.suppress(Exception):
                    channel.close()

    @contextlib.contextmanager
    def current(self) -> Iterator[Celery]:
        """Make this process publish to RabbitMQ (config.publishing uses Celery's current app)."""
        self.app.set_current()
        try:
            yield self.app
        finally:
            app.set_current()


def rabbitmq_for(vhost: str, *, port: int = PORT) -> RabbitMQ:
    """Raises RabbitMQUnavailable when the broker or the vhost cannot be had."""
    vhost_ensure(vhost)
    url = amqp_url(vhost, port=port)
    rabbit = MendhookCelery("mendhook", set_as_current=False)
    rabbit.config_from_object("django.conf:settings", namespace="CELERY")
    options = broker_options(url, delivery_limit=settings.MENDHOOK_BROKER_DELIVERY_LIMIT)
    rabbit.conf.update(broker_url=url, **options.celery_conf())
    return RabbitMQ(vhost=vhost, url=url, app=rabbit)
