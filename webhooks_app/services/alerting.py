"""Delivering alerts to the Slack-compatible incoming webhook (ALERT_WEBHOOK_URL).

A 4xx (other than 429) means the URL or the message is wrong: retrying cannot help, so it is
permanent and reported once. A 5xx, a 429, a timeout or a dropped connection is the receiver
being unwell for a while: transient, retried by the calling task with backoff.
"""

import logging
import random
import uuid
from typing import Any

import httpx
from django.conf import settings

from webhooks_app.connectors.clio import retry_after_seconds
from webhooks_app.models import WebhookEvent
from webhooks_app.reporting import report_failure

logger = logging.getLogger(__name__)

DEAD_LETTER_FUNCTION = "webhooks_app.tasks.send_dead_letter_alert"


class AlertDeliveryError(Exception):
    """The receiver did not take the alert. `permanent`: do not send it again."""

    def __init__(self, message: str, *, permanent: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


def alert_post(*, url: str, body: dict[str, Any]) -> None:
    """POST one alert; raise AlertDeliveryError saying whether it may be tried again."""
    try:
        response = httpx.post(url, json=body, timeout=settings.MENDHOOK_ALERT_HTTP_TIMEOUT_SECONDS)
    except httpx.TransportError as exc:  # timeouts, refused and dropped connections
        raise AlertDeliveryError(f"alert receiver unreachable: {exc!r}", permanent=False) from exc
    status = response.status_code
    if status == 429 or status >= 500:
        raise AlertDeliveryError(
            f"alert receiver answered {status}",
            permanent=False,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    if status >= 400:
        raise AlertDeliveryError(f"alert receiver refused the alert: {status} {response.text[:200]}", permanent=True)


def alert_retry_countdown(*, retries: int, retry_after: float | None = None) -> float:
    """Exponential backoff with up to 25% jitter, capped; never sooner than the receiver asked."""
    base = float(settings.MENDHOOK_ALERT_RETRY_BACKOFF_SECONDS) * 2.0**retries
    delay = min(base, float(settings.MENDHOOK_ALERT_RETRY_BACKOFF_MAX_SECONDS)) * (1 + random.uniform(0, 0.25))
    return max(delay, retry_after or 0.0)


def dead_letter_alert_send(*, event_id: uuid.UUID) -> None:
    """Send the alert for one dead letter. Raises AlertDeliveryError only when a retry may help;
    a permanent refusal is reported once (an error record) and the alert dropped."""
    event = WebhookEvent.objects.select_related("source", "organization").get(id=event_id)
    text = (
        f":red_circle: mendhook dead letter: {event.event_type} from {event.source.slug} "
        f"({event.organization.slug}) failed after {event.attempts} attempts. "
        f"[{event.last_error_code}] {event.last_error} (event {event.id})"
    )
    url = settings.MENDHOOK_ALERT_WEBHOOK_URL
    if not url:
        # The dead letter itself is already an error record; this line is only the alert.
        report_failure(
            logger,
            "ALERT %s",
            text,
            level=logging.ERROR,
            event=event,
            function=DEAD_LETTER_FUNCTION,
            action="alert",
            error_record=False,
        )
        return
    try:
        alert_post(url=url, body={"text": text, "event_id": str(event.id)})
    except AlertDeliveryError as exc:
        if not exc.permanent:
            raise
        report_failure(
            logger,
            "dead-letter alert for event %s not delivered, not retried: %s",
            event.id,
            exc,
            level=logging.ERROR,
            event=event,
            function=DEAD_LETTER_FUNCTION,
            action="alert",
        )


OUTBOUND_FUNCTION = "webhooks_app.tasks.send_outbound_alert"


def alert_text_send(*, text: str, function: str = OUTBOUND_FUNCTION) -> None:
    """Send a plain alert line (an endpoint's last attempt failed, an endpoint was disabled).
    The failure it is about is already an error record. Raises AlertDeliveryError only when a
    retry may help; a permanent refusal is reported once and the alert dropped."""
    url = settings.MENDHOOK_ALERT_WEBHOOK_URL
    if not url:
        report_failure(
            logger, "ALERT %s", text, level=logging.ERROR, function=function, action="alert", error_record=False
        )
        return
    try:
        alert_post(url=url, body={"text": text})
    except AlertDeliveryError as exc:
        if not exc.permanent:
            raise
        report_failure(
            logger,
            "alert not delivered, not retried: %s",
            exc,
            level=logging.ERROR,
            function=function,
            action="alert",
        )
