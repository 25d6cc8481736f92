"""Which endpoints of an organization want each event type: cached per process, so a change
nobody subscribes to costs no query most of the time."""

import threading
import time
import uuid
from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from webhooks_app.models import Endpoint

_subscriptions: dict[int, tuple[float, dict[str, list[uuid.UUID]]]] = {}
_lock = threading.Lock()


def endpoints_subscribed(*, organization_id: int, event_type: str) -> list[uuid.UUID]:
    """Enabled endpoints of the organization subscribed to `event_type`. Cached per process
    for OUTBOUND_SUBSCRIPTION_CACHE_SECONDS so that a change with no subscriber costs no query
    most of the time; a change to an endpoint in this process applies at once (signals below),
    other processes see it within the TTL."""
    now = time.monotonic()
    cached = _subscriptions.get(organization_id)
    if cached is None or cached[0] <= now:
        by_type: dict[str, list[uuid.UUID]] = {}
        rows = Endpoint.objects.filter(organization_id=organization_id, enabled=True).values_list("id", "event_types")
        for endpoint_id, types in rows:
            for t in types if isinstance(types, list) else []:
                by_type.setdefault(str(t), []).append(endpoint_id)
        with _lock:
            if len(_subscriptions) > 10_000:
                _subscriptions.clear()
            _subscriptions[organization_id] = (now + settings.MENDHOOK_OUTBOUND_SUBSCRIPTION_CACHE_SECONDS, by_type)
        cached = _subscriptions[organization_id]
    return list(cached[1].get(event_type, ()))


def subscriptions_forget() -> None:
    with _lock:
        _subscriptions.clear()


def _forget(sender: type[Endpoint], **kwargs: Any) -> None:
    subscriptions_forget()


post_save.connect(_forget, sender=Endpoint, dispatch_uid="outbound-subscriptions-save", weak=False)
post_delete.connect(_forget, sender=Endpoint, dispatch_uid="outbound-subscriptions-delete", weak=False)
