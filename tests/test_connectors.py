"""The Clio HTTP connector against a real local server: each failure maps to its code."""

import pytest

from tests.support.fake_http import Fault
from webhooks_app.connectors import TaskSpec
from webhooks_app.connectors.clio import ClioHttpConnector, retry_after_seconds
from webhooks_app.errors import ErrorCode, FailureKind, ProcessingError


@pytest.fixture
def clio(fake_clio, settings):
    settings.MENDHOOK_HTTP_TIMEOUT_SECONDS = 0.5
    fake_clio.reset()
    yield fake_clio
    fake_clio.reset()


def spec(key: str = "evt:1") -> TaskSpec:
    return TaskSpec(
        organization_id=1,
        entity_id="1001",
        title="Run Conflict Check",
        description="",
        assignee="paralegal.garcia",
        due_at=None,
        idempotency_key=key,
    )


def connector(clio) -> ClioHttpConnector:
    return ClioHttpConnector(base_url=clio.url, token="t0ken")


def test_it_creates_a_task_and_sends_the_idempotency_key(clio):
    downstream_id = connector(clio).create_task(spec("evt:1"))

    assert downstream_id == "1001"
    request = clio.requests[-1]
    assert request["headers"]["idempotency-key"] == "evt:1"
    assert request["headers"]["authorization"] == "Bearer t0ken"


def test_the_same_key_twice_returns_the_first_task(clio):
    c = connector(clio)
    assert c.create_task(spec("evt:1")) == c.create_task(spec("evt:1"))
    assert clio.creations == 1


@pytest.mark.parametrize(
    ("fault", "code", "kind"),
    [
        (Fault(500), ErrorCode.CLIO_API_FAILED, FailureKind.TRANSIENT),
        (Fault(503), ErrorCode.CLIO_API_FAILED, FailureKind.TRANSIENT),
        (Fault(429, retry_after="7"), ErrorCode.RATE_LIMITED, FailureKind.TRANSIENT),
        (Fault(422), ErrorCode.DOWNSTREAM_REJECTED, FailureKind.PERMANENT),
        (Fault(delay=1.5), ErrorCode.TIMEOUT, FailureKind.TRANSIENT),
        (Fault(drop=True), ErrorCode.CONNECTION, FailureKind.TRANSIENT),
    ],
)
def test_it_maps_each_failure_to_its_code(clio, fault, code, kind):
    clio.fail_next(fault)

    with pytest.raises(ProcessingError) as caught:
        connector(clio).create_task(spec())

    assert caught.value.code == code
    assert caught.value.kind == kind
    if code == ErrorCode.RATE_LIMITED:
        assert caught.value.retry_after == 7.0


def test_an_unreachable_api_is_a_connection_error(clio):
    from tests.support.processes import free_port

    c = ClioHttpConnector(base_url=f"http://127.0.0.1:{free_port()}", token="")
    with pytest.raises(ProcessingError) as caught:
        c.create_task(spec())
    assert caught.value.code == ErrorCode.CONNECTION


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
