from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client

from config.queues import Queue
from localdev import demo
from tests.factories import OrganizationFactory, SourceFactory
from tests.support.admin import login, make_user, ops_staff_group_ensure
from tests.support.api import Api, api_for
from tests.support.breakers import QUICK_OVERRIDES_ENV, breakers_forget
from tests.support.fake_http import FakeClio, Recorder
from tests.support.fake_providers import FakeRetell, FakeTwilio, provider_env
from tests.support.fake_providers_calls import FakeAnalysis
from tests.support.outbound import Receiver
from tests.support.rabbitmq import RabbitMQ, RabbitMQUnavailable, rabbitmq_for
from tests.support.signing import encode, standard_headers
from tests.support.worker import WorkerProcess, clean_redis, private_broker, purge_queues, worker_env
from webhooks_app.models import ConnectorKind, Organization, Source


@pytest.fixture
def organization(db: None) -> Organization:
    org = OrganizationFactory()
    demo.templates_create(organization=org)
    demo.assignee_rules_create(organization=org)
    return org


@pytest.fixture
def source(organization: Organization) -> Source:
    return SourceFactory(organization=organization)


@pytest.fixture
def post_webhook(client: Client) -> Callable[..., Any]:
    def post(source: Source, payload: dict[str, Any], headers: dict[str, str] | None = None, **kw: Any) -> Any:
        body = encode(payload)
        signed = headers if headers is not None else standard_headers(source.signing_secrets[0], body)
        return client.post(
            f"/webhooks/{source.slug}/",
            data=body,
            content_type=kw.pop("content_type", "application/json"),
            headers=signed,
            **kw,
        )

    return post


@pytest.fixture
def broker() -> Iterator[Callable[[], int]]:
    """A broker of this test's own, its processing queue empty; call it for its length. No worker
    reads it (a running session worker would take what the test means to count)."""
    with private_broker() as client:
        yield lambda: int(client.llen(Queue.WEBHOOKS.value))


# --- Third-party fakes and the real worker (integration tests) ------------------------------


@pytest.fixture(autouse=True)
def breakers_closed_after_each_test() -> Iterator[None]:
    yield
    breakers_forget()


@pytest.fixture(scope="session")
def fake_clio() -> Iterator[FakeClio]:
    server = FakeClio().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def alert_receiver() -> Iterator[Recorder]:
    server = Recorder().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sentry_receiver() -> Iterator[Recorder]:
    server = Recorder().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_ai() -> Iterator[FakeAnalysis]:
    server = FakeAnalysis().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_retell() -> Iterator[FakeRetell]:
    server = FakeRetell().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_twilio() -> Iterator[FakeTwilio]:
    server = FakeTwilio().start()
    yield server
    server.stop()


# Workflow settings of the session worker: the fakes, short backoffs and leases.
WORKFLOW_TEST_ENV = {"WORKFLOW_BACKOFF_BASE_SECONDS": "0.2", "WORKFLOW_LEASE_SECONDS": "3"}


@pytest.fixture(scope="session")
def worker_process(
    django_db_setup: None,
    django_db_blocker: Any,
    fake_clio: FakeClio,
    alert_receiver: Recorder,
    sentry_receiver: Recorder,
    fake_ai: FakeAnalysis,
    fake_retell: FakeRetell,
    fake_twilio: FakeTwilio,
) -> Iterator[WorkerProcess]:
    """One worker for the session, with alerts and Sentry pointed at local recorders. It is
    stopped before pytest-django drops the test database."""
    with django_db_blocker.unblock():
        clean_redis()
        env = session_worker_env(fake_clio, alert_receiver, sentry_receiver, fake_ai, fake_retell, fake_twilio)
    proc = WorkerProcess(env=env, name="test").start()
    yield proc
    proc.stop()
    clean_redis()


def session_worker_env(
    fake_clio: FakeClio,
    alert_receiver: Recorder,
    sentry_receiver: Recorder,
    fake_ai: FakeAnalysis,
    fake_retell: FakeRetell,
    fake_twilio: FakeTwilio,
    **overrides: str,
) -> dict[str, str]:
    """The session workers' environment (one per broker): the fakes, short backoffs and leases."""
    return worker_env(
        ALERT_WEBHOOK_URL=f"{alert_receiver.url}/slack",
        SENTRY_DSN=f"http://publickey@127.0.0.1:{sentry_receiver.port}/1",
        SENTRY_ENVIRONMENT="test",
        ANALYSIS_BASE_URL=f"{fake_ai.url}/v1",
        ANALYSIS_TIMEOUT_SECONDS="1",
        # Breakers stay out of the way of tests about other things (a downstream that never
        # recovers must dead-letter in seconds); tests/test_breakers.py uses clio:brk-* sources.
        BREAKER_FAIL_MAX="1000",
        BREAKER_OVERRIDES=QUICK_OVERRIDES_ENV,
        **provider_env(fake_retell, fake_twilio),
        **WORKFLOW_TEST_ENV,
        # Alert deliveries refused for a while are retried within a test's patience.
        ALERT_RETRY_BACKOFF_SECONDS="0.2",
        **overrides,
    )


@pytest.fixture
def worker(
    transactional_db: None,
    worker_process: WorkerProcess,
    fake_clio: FakeClio,
    alert_receiver: Recorder,
    sentry_receiver: Recorder,
    fake_ai: FakeAnalysis,
    fake_retell: FakeRetell,
    fake_twilio: FakeTwilio,
) -> Iterator[WorkerProcess]:
    for fake in (fake_clio, alert_receiver, sentry_receiver, fake_ai, fake_retell, fake_twilio):
        fake.reset()
    purge_queues()
    yield worker_process
    purge_queues()
    for gated in (fake_clio, fake_retell, fake_twilio):
        gated.gate.set()


# --- RabbitMQ, the second broker: the same integration paths run on both ----------------------


@pytest.fixture(scope="session")
def rabbitmq(django_db_setup: None) -> RabbitMQ:
    """RabbitMQ in a vhost named after the test database, emptied of the project's messages.
    (Django renames the database only when some collected test uses it; the vhost not.)"""
    name = connection.settings_dict["NAME"]
    try:
        rabbit = rabbitmq_for(name if name.startswith("test_") else f"test_{name}")
    except RabbitMQUnavailable as exc:
        pytest.fail(str(exc))
    rabbit.purge()
    return rabbit


@pytest.fixture(scope="session")
def rabbit_worker_process(
    django_db_setup: None,
    django_db_blocker: Any,
    rabbitmq: RabbitMQ,
    fake_clio: FakeClio,
    alert_receiver: Recorder,
    sentry_receiver: Recorder,
    fake_ai: FakeAnalysis,
    fake_retell: FakeRetell,
    fake_twilio: FakeTwilio,
) -> Iterator[WorkerProcess]:
    """The session worker's twin on RabbitMQ, started the first time a test asks for it."""
    with django_db_blocker.unblock():
        env = session_worker_env(
            fake_clio,
            alert_receiver,
            sentry_receiver,
            fake_ai,
            fake_retell,
            fake_twilio,
            CELERY_BROKER_URL=rabbitmq.url,
        )
    proc = WorkerProcess(env=env, name="test-rabbit").start()
    yield proc
    proc.stop()
    rabbitmq.purge()


@pytest.fixture
def rabbit_worker(
    transactional_db: None,
    rabbitmq: RabbitMQ,
    rabbit_worker_process: WorkerProcess,
    fake_clio: FakeClio,
    alert_receiver: Recorder,
    sentry_receiver: Recorder,
    fake_ai: FakeAnalysis,
    fake_retell: FakeRetell,
    fake_twilio: FakeTwilio,
) -> Iterator[WorkerProcess]:
    """The RabbitMQ worker, with this process publishing to RabbitMQ for the test."""
    for fake in (fake_clio, alert_receiver, sentry_receiver, fake_ai, fake_retell, fake_twilio):
        fake.reset()
    rabbitmq.purge()
    with rabbitmq.current():
        yield rabbit_worker_process
    rabbitmq.purge()
    for gated in (fake_clio, fake_retell, fake_twilio):
        gated.gate.set()


@pytest.fixture(params=["redis", "rabbitmq"])
def any_broker_worker(request: pytest.FixtureRequest, transactional_db: None) -> WorkerProcess:
    """`worker` on each broker in turn: for the tests of what the broker itself does (dispatch,
    countdown retries, redelivery after a worker dies). transactional_db is named here, not only
    by the worker fixtures, so pytest-django knows before `db` is set up for other fixtures."""
    name = "worker" if request.param == "redis" else "rabbit_worker"
    worker: WorkerProcess = request.getfixturevalue(name)
    return worker


@pytest.fixture
def providers(settings: Any, fake_retell: FakeRetell, fake_twilio: FakeTwilio) -> tuple[FakeRetell, FakeTwilio]:
    """The fake Retell and Twilio, emptied, with this process's settings pointed at them (for
    steps executed in the test process; the session worker has the same in its environment)."""
    for fake in (fake_retell, fake_twilio):
        fake.reset()
    for name, value in {**provider_env(fake_retell, fake_twilio), **WORKFLOW_TEST_ENV}.items():
        setattr(settings, name, float(value) if name.startswith("WORKFLOW_") else value)
    return fake_retell, fake_twilio


@pytest.fixture
def clio_source(organization: Organization, fake_clio: FakeClio) -> Source:
    """A source whose tasks go to the fake Clio, with backoff short enough for tests."""
    return SourceFactory(
        organization=organization,
        connector=ConnectorKind.CLIO_HTTP,
        connector_base_url=fake_clio.url,
        backoff_base_seconds=0.5,
        backoff_factor=2.0,
    )


# --- Admin users ------------------------------------------------------------------------------


@pytest.fixture
def ops_group(db) -> Group:
    return ops_staff_group_ensure()


@pytest.fixture
def ops(ops_group) -> Client:
    """A member of the Ops staff group, not a superuser."""
    return login(make_user("ops.anna", group=ops_group))


@pytest.fixture
def viewer(db) -> Client:
    """Staff who may look at events but not act on them."""
    return login(make_user("viewer.vic", perms=("webhooks_app.view_webhookevent", "webhooks_app.view_eventitem")))


# --- The REST API -----------------------------------------------------------------------------


@pytest.fixture
def api(organization: Organization) -> Api:
    """An API client holding a key of `organization`."""
    return api_for(organization)


@pytest.fixture
def fresh_api_cache() -> Iterator[None]:
    """Throttle counters and cached figures live in Redis under mendhook:api:*; a new test
    database reuses key ids, so old counters must not leak into this test. Modules whose figures
    or throttles depend on it request it with `pytestmark`."""

    def forget() -> None:
        client = redis.Redis.from_url(settings.REDIS_URL)
        keys = list(client.scan_iter(match="mendhook:api:*"))
        if keys:
            client.delete(*keys)

    forget()
    yield
    forget()


# --- Outbound notifications -------------------------------------------------------------------


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def receiver(receiver_server: Receiver) -> Iterator[Receiver]:
    """A customer's receiver verifying Standard Webhooks signatures (trust() the endpoint's
    secret); endpoints carry its URL, so workers need no setting for it."""
    from webhooks_app.services.outbound.subscriptions import subscriptions_forget

    receiver_server.reset()
    subscriptions_forget()  # endpoints of an earlier test's flushed database are gone
    yield receiver_server
    receiver_server.reset()
