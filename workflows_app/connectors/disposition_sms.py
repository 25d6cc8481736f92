"""A text message sent by a disposition's send_sms action, Twilio-style (the same request as
the workflow SMS step: form-encoded To/From/Body to the account's Messages resource, basic auth),
with the action's idempotency key so a retried action cannot text the lead twice."""

import threading

import httpx
from django.conf import settings

from webhooks_app.connectors.clio import retry_after_seconds
from webhooks_app.errors import ErrorCode, ProcessingError

_local = threading.local()


def _client() -> httpx.Client:
    client = getattr(_local, "client", None)
    if client is None:
        client = httpx.Client()
        _local.client = client
    return client


def disposition_sms_send(*, to: str, body: str, idempotency_key: str) -> str:
    """Send the message; return the provider's message id. Raises ProcessingError with a
    catalogue code (5xx, timeouts and 429 are transient: the event's retries take them)."""
    base_url = settings.TWILIO_BASE_URL.rstrip("/")
    sid = settings.TWILIO_ACCOUNT_SID
    if not base_url or not sid or not settings.TWILIO_FROM_NUMBER:
        raise ProcessingError(
            "SMS is not configured (TWILIO_BASE_URL, TWILIO_ACCOUNT_SID, TWILIO_FROM_NUMBER)",
            code=ErrorCode.VALIDATION,
        )
    try:
        response = _client().post(
            f"{base_url}/2010-04-01/Accounts/{sid}/Messages.json",
            data={"To": to, "From": settings.TWILIO_FROM_NUMBER, "Body": body},
            auth=(sid, settings.TWILIO_AUTH_TOKEN),
            headers={"Idempotency-Key": idempotency_key},
            timeout=settings.MENDHOOK_HTTP_TIMEOUT_SECONDS,
        )
    except httpx.TimeoutException as exc:
        raise ProcessingError(f"SMS provider timed out: {exc!r}", code=ErrorCode.TIMEOUT) from exc
    except httpx.TransportError as exc:
        raise ProcessingError(f"SMS provider unreachable: {exc!r}", code=ErrorCode.CONNECTION) from exc
    status = response.status_code
    if status == 429:
        raise ProcessingError(
            "SMS provider rate limit (429)",
            code=ErrorCode.RATE_LIMITED,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    if status >= 500:
        raise ProcessingError(f"SMS provider failed: {status} {response.reason_phrase}", code=ErrorCode.CLIO_API_FAILED)
    if status >= 400:
        raise ProcessingError(
            f"SMS provider rejected the message: {status} {response.text[:300]}", code=ErrorCode.DOWNSTREAM_REJECTED
        )
    try:
        return str(response.json()["sid"])
    except (ValueError, KeyError, TypeError):
        raise ProcessingError("SMS provider answered without a message sid", code=ErrorCode.CLIO_API_FAILED) from None
