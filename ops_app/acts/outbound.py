"""Acts on outbound notifications: retry a delivery or a message, recover an endpoint since a
time, enable and disable an endpoint. The state changes are webhooks_app's outbound operations;
the plans ask the same questions they do, and the run decides again."""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from ops_app.acts.base import Act, Change, Plan
from ops_app.models import AuditAct
from webhooks_app.models import Delivery, DisabledReason, Endpoint, OutboundMessage
from webhooks_app.services.operations import Actor
from webhooks_app.services.outbound.endpoint_state import EndpointStateError, endpoint_disable, endpoint_enable
from webhooks_app.services.outbound.operations import (
    DeliveryActError,
    delivery_retry,
    delivery_retry_refusal,
    endpoint_recover,
    endpoint_recover_plan,
    message_retry,
    message_retry_plan,
)

RETRY_PERMISSION = "webhooks_app.retry_delivery"
ENDPOINT_PERMISSION = "webhooks_app.change_endpoint"
# Recover-since without a time (the admin's act panel): since the endpoint began failing or was
# disabled, else the last day.
DEFAULT_RECOVER_WINDOW = timedelta(days=1)


def recover_since_default(endpoint: Endpoint, *, now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return endpoint.failing_since or endpoint.disabled_at or now - DEFAULT_RECOVER_WINDOW


def _plan_deliveries(deliveries: Sequence[Delivery]) -> list[Plan]:
    rows = {
        d.pk: d
        for d in Delivery.objects.select_related("message", "endpoint").filter(pk__in=[d.pk for d in deliveries])
    }
    plans = []
    for delivery in deliveries:
        refusal = delivery_retry_refusal(rows.get(delivery.pk, delivery))
        plans.append(Plan(delivery, not refusal, refusal))
    return plans


def _plan_messages(messages: Sequence[OutboundMessage]) -> list[Plan]:
    plans = []
    for message in messages:
        retryable, refusal = message_retry_plan(message)
        plans.append(Plan(message, bool(retryable), refusal or f"{len(retryable)} delivery(ies) sent again"))
    return plans


def _plan_recover(endpoints: Sequence[Endpoint]) -> list[Plan]:
    plans = []
    for endpoint in endpoints:
        if not endpoint.enabled:
            plans.append(Plan(endpoint, False, "disabled: enable it first"))
            continue
        since = recover_since_default(endpoint)
        counts = endpoint_recover_plan(endpoint=endpoint, since=since)
        reason = f"since {since:%Y-%m-%d %H:%M}: {counts.failed} failed, {counts.missed} missed"
        plans.append(Plan(endpoint, counts.total > 0, reason))
    return plans


def _plan_switch(*, to_enabled: bool) -> Any:
    def plan_many(endpoints: Sequence[Endpoint]) -> list[Plan]:
        plans = []
        for endpoint in endpoints:
            if endpoint.enabled == to_enabled:
                plans.append(Plan(endpoint, False, "already enabled" if to_enabled else "already disabled"))
            elif to_enabled:
                since = recover_since_default(endpoint)
                counts = endpoint_recover_plan(endpoint=endpoint, since=since)
                hint = (
                    f"then recover: {counts.total} notification(s) since {since:%Y-%m-%d %H:%M}" if counts.total else ""
                )
                plans.append(Plan(endpoint, True, hint))
            else:
                plans.append(Plan(endpoint, True))
        return plans

    return plan_many


def _retry_delivery(*, target_id: uuid.UUID, actor: Actor, note: str) -> Change:
    return delivery_retry(delivery_id=target_id)


def _retry_message(*, target_id: uuid.UUID, actor: Actor, note: str) -> Change:
    return message_retry(message_id=target_id)


def _recover(*, target_id: uuid.UUID, actor: Actor, note: str, since: datetime | None = None) -> Change:
    if since is None:
        endpoint = Endpoint.objects.filter(id=target_id).first()
        if endpoint is None:
            raise DeliveryActError("no such endpoint")
        since = recover_since_default(endpoint)
    return endpoint_recover(endpoint_id=target_id, since=since)


def _enable(*, target_id: uuid.UUID, actor: Actor, note: str) -> Change:
    return endpoint_enable(endpoint_id=target_id)


def _disable(*, target_id: uuid.UUID, actor: Actor, note: str) -> Change:
    return endpoint_disable(endpoint_id=target_id, reason=DisabledReason.MANUAL, note=note)


RETRY_DELIVERY = Act(
    name=AuditAct.RETRY_DELIVERY,
    title="Retry delivery now",
    button="Retry now",
    verb="retry",
    permission=RETRY_PERMISSION,
    model=Delivery,
    needs_note=False,
    plan_many=_plan_deliveries,
    run=_retry_delivery,
    refused_by=DeliveryActError,
)
RETRY_MESSAGE = Act(
    name=AuditAct.RETRY_MESSAGE,
    title="Retry failed deliveries of the message",
    button="Retry failed deliveries",
    verb="retry",
    permission=RETRY_PERMISSION,
    model=OutboundMessage,
    needs_note=False,
    plan_many=_plan_messages,
    run=_retry_message,
    refused_by=DeliveryActError,
)
RECOVER_ENDPOINT = Act(
    name=AuditAct.RECOVER_ENDPOINT,
    title="Recover failed and missed notifications",
    button="Recover",
    verb="recover",
    permission=RETRY_PERMISSION,
    model=Endpoint,
    needs_note=False,
    plan_many=_plan_recover,
    run=_recover,
    refused_by=DeliveryActError,
)
ENABLE_ENDPOINT = Act(
    name=AuditAct.ENABLE_ENDPOINT,
    title="Enable endpoint",
    button="Enable",
    verb="enable",
    permission=ENDPOINT_PERMISSION,
    model=Endpoint,
    needs_note=False,
    plan_many=_plan_switch(to_enabled=True),
    run=_enable,
    refused_by=EndpointStateError,
)
DISABLE_ENDPOINT = Act(
    name=AuditAct.DISABLE_ENDPOINT,
    title="Disable endpoint",
    button="Disable",
    verb="disable",
    permission=ENDPOINT_PERMISSION,
    model=Endpoint,
    needs_note=True,
    plan_many=_plan_switch(to_enabled=False),
    run=_disable,
    refused_by=EndpointStateError,
)
OUTBOUND_ACTS = (RETRY_DELIVERY, RETRY_MESSAGE, RECOVER_ENDPOINT, ENABLE_ENDPOINT, DISABLE_ENDPOINT)
