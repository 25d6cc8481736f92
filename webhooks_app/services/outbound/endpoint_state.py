"""An endpoint's own moves: disabled (by a person, a 410, or days of failure) and enabled again.
Each is one conditional UPDATE; the alert and the subscription cache follow it."""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from webhooks_app.errors import ErrorCode
from webhooks_app.models import DisabledReason, Endpoint
from webhooks_app.reporting import report_failure
from webhooks_app.services.outbound.dispatch import alert_publish
from webhooks_app.services.outbound.subscriptions import subscriptions_forget

logger = logging.getLogger(__name__)

ENABLED, DISABLED = "enabled", "disabled"


class EndpointStateError(Exception):
    """The act does not apply to the endpoint in its current state. Safe to show."""


@dataclass(frozen=True)
class EndpointChange:
    endpoint_id: uuid.UUID
    status_before: str
    status_after: str
    # Enabling: since when it had been failing or disabled, what recover-since would start from.
    failing_since: datetime | None = None


def endpoint_disable(
    *, endpoint_id: uuid.UUID, reason: DisabledReason, note: str, now: datetime | None = None
) -> EndpointChange:
    now = now or timezone.now()
    moved = Endpoint.objects.filter(id=endpoint_id, enabled=True).update(
        enabled=False, disabled_reason=reason, disabled_note=note, disabled_at=now, updated_at=now
    )
    if not moved:
        raise EndpointStateError("already disabled")
    subscriptions_forget()
    if reason != DisabledReason.MANUAL:
        endpoint = Endpoint.objects.get(id=endpoint_id)
        code = ErrorCode.ENDPOINT_GONE if reason == DisabledReason.GONE else ErrorCode.ENDPOINT_FAILING
        report_failure(
            logger,
            "outbound endpoint %s disabled: %s",
            endpoint.url,
            note,
            level=logging.ERROR,
            organization_id=endpoint.organization_id,
            error_code=code,
            function="webhooks_app.services.outbound.endpoint_state.endpoint_disable",
            action="disable_endpoint",
        )
        alert_publish(
            text=f":no_entry: mendhook disabled the notification endpoint {endpoint.url}: {note}. "
            "Re-enable it in the admin once it works, and recover what failed meanwhile.",
            function="webhooks_app.services.outbound.endpoint_state.endpoint_disable",
        )
    return EndpointChange(endpoint_id, ENABLED, DISABLED)


def endpoint_enable(*, endpoint_id: uuid.UUID, now: datetime | None = None) -> EndpointChange:
    """Enabled with a fresh failure clock (or beat would disable it again at once)."""
    now = now or timezone.now()
    endpoint = Endpoint.objects.filter(id=endpoint_id).first()
    if endpoint is None:
        raise EndpointStateError("no such endpoint")
    since = endpoint.failing_since or endpoint.disabled_at
    moved = Endpoint.objects.filter(id=endpoint_id, enabled=False).update(
        enabled=True, disabled_reason="", disabled_note="", disabled_at=None, failing_since=None, updated_at=now
    )
    if not moved:
        raise EndpointStateError("already enabled")
    subscriptions_forget()
    return EndpointChange(endpoint_id, DISABLED, ENABLED, failing_since=since)
