from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client

from config.queues import Queue
from localdev import demo
from tests.factories import OrganizationFactory, SourceFactory
from tests.support.admin import login, make_user, ops_staff_group_ensure
from tests.support.api import Api, api_for
from tests.support.fake_http import FakeClio, Recorder
from tests.support.outbound import Receiver
from tests.support.signing import encode, standard_headers
from tests.support.worker import WorkerProcess, clean_redis, purge_queues, worker_env
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
    """The test broker's processing queue, emptied before and after; call it for its length."""
    purge_queues()
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield lambda: int(client.llen(Queue.WEBHOOKS.value))
    purge_queues()


# --- Third-party fakes and the real worker (integration tests) ------------------------------


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
def worker_process(
    django_db_setup: None,
    django_db_blocker: Any,
    fake_clio: FakeClio,
    alert_receiver: Recorder,
    sentry_receiver: Recorder,
) -> Iterator[WorkerProcess]:
    """One worker for the session, with alerts and Sentry pointed at local recorders. It is
    stopped before pytest-django drops the test database."""
    with django_db_blocker.unblock():
        clean_redis()
        env = worker_env(
            ALERT_WEBHOOK_URL=f"{alert_receiver.url}/slack",
            SENTRY_DSN=f"http://publickey@127.0.0.1:{sentry_receiver.port}/1",
            SENTRY_ENVIRONMENT="test",
        )
    proc = WorkerProcess(env=env, name="test").start()
    yield proc
    proc.stop()
    clean_redis()


@pytest.fixture
def worker(
    transactional_db: None,
    worker_process: WorkerProcess,
    fake_clio: FakeClio,
    alert_receiver: Recorder,
    sentry_receiver: Recorder,
) -> Iterator[WorkerProcess]:
    for fake in (fake_clio, alert_receiver, sentry_receiver):
        fake.reset()
    purge_queues()
    yield worker_process
    purge_queues()
    fake_clio.gate.set()


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
