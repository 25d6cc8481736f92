"""A Clio-style REST connector over httpx, mapping transport and HTTP failures to error codes."""

import threading
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from django.conf import settings
from django.utils import timezone

from webhooks_app.breakers import breaker_call
from webhooks_app.connectors.base import TaskSpec
from webhooks_app.errors import ErrorCode, ProcessingError
from webhooks_app.rate_limits import outbound_take

_local = threading.local()


def _client() -> httpx.Client:
    # One pooled client per thread of each worker process, created after the prefork fork.
    client = getattr(_local, "client", None)
    if client is None:
        client = httpx.Client()
        _local.client = client
    return client


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - timezone.now()).total_seconds())
    except (TypeError, ValueError):
        return None


class ClioHttpConnector:
    def __init__(self, *, base_url: str, token: str, breaker_name: str = "", rate_limit: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        # The connection's circuit breaker and outbound limit (webhooks_app.breakers and
        # rate_limits); without a name, calls go unguarded (tools and tests of the mapping).
        self.breaker_name = breaker_name
        self.rate_limit = rate_limit

    def create_task(self, spec: TaskSpec) -> str:
        if not self.breaker_name:
            return self._create_task(spec)
        # The rate limit first: a call it holds back must not reach the breaker, where any
        # answer that is not a transient failure counts as the system being up.
        outbound_take(name=self.breaker_name, limit=self.rate_limit)
        return breaker_call(self.breaker_name, self._create_task, spec)

    def _create_task(self, spec: TaskSpec) -> str:
        body: dict[str, Any] = {
            "data": {
                "name": spec.title,
                "description": spec.description,
                "matter": {"id": spec.entity_id},
                "assignee": {"id": spec.assignee},
                "due_at": spec.due_at.isoformat() if spec.due_at else None,
            }
        }
        headers = {"Idempotency-Key": spec.idempotency_key}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = _client().post(
                f"{self.base_url}/api/v4/tasks.json",
                json=body,
                headers=headers,
                timeout=settings.MENDHOOK_HTTP_TIMEOUT_SECONDS,
            )
        except httpx.TimeoutException as exc:
            raise ProcessingError(f"Clio API timed out: {exc!r}", code=ErrorCode.TIMEOUT) from exc
        except httpx.TransportError as exc:
            raise ProcessingError(f"Clio API unreachable: {exc!r}", code=ErrorCode.CONNECTION) from exc

        status = response.status_code
        if status == 429:
            raise ProcessingError(
                "Clio API rate limit (429)",
                code=ErrorCode.RATE_LIMITED,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if status >= 500:
            raise ProcessingError(f"Clio API failed: {status} {response.reason_phrase}", code=ErrorCode.CLIO_API_FAILED)
        if status >= 400:
            raise ProcessingError(
                f"Clio API rejected the task: {status} {response.text[:300]}",
                code=ErrorCode.DOWNSTREAM_REJECTED,
            )
        try:
            return str(response.json()["data"]["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ProcessingError(
                f"Clio API answered {status} without a task id", code=ErrorCode.CLIO_API_FAILED
            ) from exc
