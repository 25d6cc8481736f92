"""Writing outbound messages: in the caller's transaction (the outbox), published on commit."""

import logging
import uuid
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from webhooks_app.errors import ErrorCode
from webhooks_app.models import Delivery, DeliveryStatus, OutboundMessage
from webhooks_app.reporting import report_failure
from webhooks_app.services.outbound.dispatch import deliveries_publish
from webhooks_app.services.outbound.subscriptions import endpoints_subscribed

logger = logging.getLogger(__name__)

# Message ids of keyed changes derive from the key: the same change reported twice (two saves
# racing from the same stale row) is one message, and its primary key says so.
_KEY_NAMESPACE = uuid.UUID("6f1d3c1e-6c55-4a55-9a53-2f1f0f6c1e2a")


def message_id_for(*, organization_id: int, key: str) -> uuid.UUID:
    return uuid.uuid5(_KEY_NAMESPACE, f"{organization_id}:{key}") if key else uuid.uuid4()


def outbound_emit(
    *,
    organization_id: int,
    event_type: str,
    payload: dict[str, Any],
    key: str = "",
    invalid_reason: str = "",
    now: datetime | None = None,
) -> OutboundMessage | None:
    """Notify the organization's endpoints subscribed to `event_type`. Call it inside the
    transaction of the change it reports: the message commits or rolls back with the change,
    and its deliveries are published only after the commit (beat's dispatcher sends any the
    broker refused). Nothing is written when no endpoint subscribes.

    `key` names the change ("<model>:<pk>:status:approved"); a second report of the same change
    writes nothing. `invalid_reason` marks a payload that can never be delivered: its deliveries
    are failed at once with that reason, never sent. Returns the message, or None.

    workflows_app calls this for workflow_run.failed and call.disposition_set.
    """
    endpoint_ids = endpoints_subscribed(organization_id=organization_id, event_type=event_type)
    if not endpoint_ids:
        return None
    now = now or timezone.now()
    message = OutboundMessage(
        id=message_id_for(organization_id=organization_id, key=key),
        organization_id=organization_id,
        event_type=event_type,
        payload={"type": event_type, "timestamp": now.isoformat(), "data": payload},
        invalid_reason=invalid_reason,
        created_at=now,
    )
    invalid = bool(invalid_reason)
    deliveries = [
        Delivery(
            message=message,
            endpoint_id=endpoint_id,
            organization_id=organization_id,
            event_type=event_type,
            status=DeliveryStatus.FAILED if invalid else DeliveryStatus.PENDING,
            next_attempt_at=None if invalid else now,
            # Published on commit below; a refused publish clears it for beat's dispatcher.
            dispatched_at=None if invalid else now,
            last_error=f"payload invalid: {invalid_reason}" if invalid else "",
            last_error_code=ErrorCode.VALIDATION if invalid else "",
            completed_at=now if invalid else None,
            created_at=now,
            updated_at=now,
        )
        for endpoint_id in endpoint_ids
    ]
    # No savepoint when the caller's transaction is open (the usual case): a savepoint per
    # change is what made the outbox cost show on the writing transaction.
    with transaction.atomic(savepoint=False):
        if key:
            try:
                # A savepoint only here: a duplicate key must not abort the caller's transaction.
                with transaction.atomic():
                    message.save(force_insert=True)
            except IntegrityError:
                logger.info("%s for %s already reported; not sent twice", event_type, key)
                return None
        else:
            message.save(force_insert=True)
        Delivery.objects.bulk_create(deliveries)
        if invalid:
            transaction.on_commit(lambda: _report_invalid(message))
        else:
            ids = [d.id for d in deliveries]
            transaction.on_commit(lambda: deliveries_publish(delivery_ids=ids))
    return message


def _report_invalid(message: OutboundMessage) -> None:
    report_failure(
        logger,
        "outbound %s %s cannot be delivered: %s",
        message.event_type,
        message.id,
        message.invalid_reason,
        organization_id=message.organization_id,
        error_code=ErrorCode.VALIDATION,
        payload=message.payload,
        function="webhooks_app.services.outbound.emit.outbound_emit",
        action="validate_payload",
    )
