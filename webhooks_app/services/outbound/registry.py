"""What produces outbound messages: the catalogue of event types, the change subscriptions
declared in code ("notify booking.approved when a Booking's status becomes approved"). Which
endpoints want each type is subscriptions.py's.

A declared change is caught by post_save with the field's value as loaded (post_init snapshot),
so the message is written inside the transaction that saves the row: a rollback takes it back,
a commit keeps it."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.db.models.signals import post_init, post_save

from webhooks_app.services.outbound.emit import outbound_emit

# mendhook's own operational events, which customers subscribe to like any other (Svix's
# operational webhooks). workflows_app sends the last two through outbound_emit.
OPERATIONAL_EVENT_TYPES = {
    "event.dead_lettered": "An inbound event outlasted its retries (dead letter).",
    "event.partial_failure": "An inbound event's work partly failed and waits for a person.",
    "workflow_run.failed": "A workflow run failed.",
    "call.disposition_set": "A call got its disposition.",
}

_event_types: dict[str, str] = dict(OPERATIONAL_EVENT_TYPES)


def event_type_register(event_type: str, description: str) -> None:
    _event_types[event_type] = description


def event_types_known() -> dict[str, str]:
    """Every event type an endpoint may subscribe to, with what it means."""
    return dict(sorted(_event_types.items()))


# --- Change subscriptions ------------------------------------------------------------------

PayloadOf = Callable[[Any, str], dict[str, Any]]
# Why the instance's payload for an event type can never be delivered, or "" when it can.
InvalidOf = Callable[[Any, str], str]


@dataclass(frozen=True)
class Watch:
    model: type[models.Model]
    organization_of: Callable[[Any], int]
    payload: PayloadOf
    created: str
    field: str
    # Value of `field` after the change -> the event type it notifies; other changes notify nothing.
    changed_to: dict[Any, str]
    invalid: InvalidOf | None


_watches: dict[type[models.Model], Watch] = {}


def watch(
    model: type[models.Model],
    *,
    organization_of: Callable[[Any], int],
    payload: PayloadOf,
    created: str = "",
    field: str = "",
    changed_to: dict[Any, str] | None = None,
    invalid: InvalidOf | None = None,
) -> None:
    """Declare what changes of `model` notify: an insert (`created`), and `field` taking one of
    the values of `changed_to`. Rows saved by save() only: a queryset update() reports nothing."""
    spec = Watch(model, organization_of, payload, created, field, dict(changed_to or {}), invalid)
    for event_type in [created, *spec.changed_to.values()]:
        if event_type:
            event_type_register(event_type, f"{model.__name__}: {event_type}")
    _watches[model] = spec
    uid = f"outbound-watch-{model._meta.label}"
    post_init.connect(_snapshot, sender=model, dispatch_uid=uid, weak=False)
    post_save.connect(_saved, sender=model, dispatch_uid=uid, weak=False)


SNAPSHOT = "_outbound_loaded_value"
_MISSING = object()


def _snapshot(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    spec = _watches.get(sender)
    if spec is not None and spec.field:
        # From __dict__: a deferred field must not cost a query per loaded row.
        setattr(instance, SNAPSHOT, instance.__dict__.get(spec.field, _MISSING))


def _saved(sender: type[models.Model], instance: models.Model, created: bool, **kwargs: Any) -> None:
    spec = _watches.get(sender)
    if spec is None or kwargs.get("raw"):
        return  # fixtures loading are not changes
    event_type = ""
    key = ""
    if created:
        event_type = spec.created
        key = f"{sender._meta.label}:{instance.pk}:created"
    elif spec.field:
        before = getattr(instance, SNAPSHOT, _MISSING)
        after = instance.__dict__.get(spec.field, _MISSING)
        if after is not _MISSING and before is not _MISSING and after != before:
            event_type = spec.changed_to.get(after, "")
            key = f"{sender._meta.label}:{instance.pk}:{spec.field}:{after}"
    if spec.field:
        setattr(instance, SNAPSHOT, instance.__dict__.get(spec.field, _MISSING))
    if not event_type:
        return
    outbound_emit(
        organization_id=spec.organization_of(instance),
        event_type=event_type,
        payload=spec.payload(instance, event_type),
        key=key,
        invalid_reason=spec.invalid(instance, event_type) if spec.invalid else "",
    )
