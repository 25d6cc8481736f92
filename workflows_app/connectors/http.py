"""The one choke point of every provider HTTP request a workflow step makes: timeouts, the
idempotency key header, and the mapping of failures to the error-code catalogue. Circuit
breakers and outbound rate limits per provider (`system`) are wired in here, once."""

import threading
from typing import Any

import httpx
from django.conf import settings

from webhooks_app.breakers import breaker_call
from webhooks_app.connectors.clio import retry_after_seconds
from webhooks_app.errors import ErrorCode, ProcessingError
from webhooks_app.rate_limits import outbound_limit_for, outbound_take

_local = threading.local()


def _client() -> httpx.Client:
    # One pooled client per thread of each worker process, created after the prefork fork.
    client = getattr(_local, "client", None)
    if client is None:
        client = httpx.Client()
        _local.client = client
    return client


def provider_post(
    system: str,
    url: str,
    *,
    idempotency_key: str,
    json: Any = None,
    data: dict[str, str] | None = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> httpx.Response:
    """POST to a provider. Returns the 2xx response, else raises ProcessingError with a catalogue
    code: timeouts, connection errors, 5xx and 429 (with its Retry-After) are transient, other
    4xx are permanent. Messages name the provider and the status, never credentials.

    Guarded per provider (`system`): its outbound rate limit (over it: ERR_RATE_LIMITED_LOCAL)
    and its circuit breaker, shared by every worker (open: ERR_CIRCUIT_OPEN). Both are
    deferrals: the step waits for the window or the breaker's reset without using a try."""
    outbound_take(name=system, limit=outbound_limit_for(system))
    return breaker_call(
        system, _post, system, url, idempotency_key, json=json, data=data, content=content, headers=headers, auth=auth
    )


def _post(
    system: str,
    url: str,
    idempotency_key: str,
    *,
    json: Any,
    data: dict[str, str] | None,
    content: bytes | None,
    headers: dict[str, str] | None,
    auth: tuple[str, str] | None,
) -> httpx.Response:
    sent = {"Idempotency-Key": idempotency_key, **(headers or {})}
    basic = httpx.BasicAuth(*auth) if auth else None
    try:
        response = _client().post(
            url,
            json=json,
            data=data,
            content=content,
            headers=sent,
            auth=basic or httpx.USE_CLIENT_DEFAULT,
            timeout=settings.WORKFLOW_HTTP_TIMEOUT_SECONDS,
        )
    except httpx.TimeoutException as exc:
        raise ProcessingError(f"{system} timed out ({type(exc).__name__})", code=ErrorCode.TIMEOUT) from exc
    except httpx.TransportError as exc:
        raise ProcessingError(f"{system} unreachable ({type(exc).__name__})", code=ErrorCode.CONNECTION) from exc
    status = response.status_code
    if status == 429:
        raise ProcessingError(
            f"{system} rate limit (429)",
            code=ErrorCode.RATE_LIMITED,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    if status >= 500:
        raise ProcessingError(f"{system} failed: {status} {response.reason_phrase}", code=ErrorCode.PROVIDER_FAILED)
    if status >= 400:
        raise ProcessingError(
            f"{system} rejected the request: {status} {response.text[:300]}", code=ErrorCode.DOWNSTREAM_REJECTED
        )
    return response


def response_field(system: str, response: httpx.Response, field: str) -> str:
    """A field of a provider's JSON answer; a 2xx without it is a provider failure."""
    try:
        value = response.json()[field]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProcessingError(
            f"{system} answered {response.status_code} without {field}", code=ErrorCode.PROVIDER_FAILED
        ) from exc
    return str(value)
