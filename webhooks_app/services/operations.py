"""What people do to events that need them: retry the failed items, requeue a dead letter,
mark resolved. Each returns the change it made; the act flow that calls them (ops_app.acts, for
the admin, the API and replays) audits it, with who acted and why, in the same transaction."""

import uuid
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from webhooks_app.models import (
    EventStatus,
    ItemStatus,
    WebhookEvent,
)
from webhooks_app.models.events import ACTIONABLE
from webhooks_app.services.dispatch import event_dispatch

# What a person may retry or resolve: every event that needs one, and a scheduled retry they
# may pull forward or settle themselves (the event's transition table allows exactly these).
RETRYABLE = ACTIONABLE
RESOLVABLE = ACTIONABLE


class OperationError(Exception):
    """The act does not apply to the event in its current state. Safe to show."""


@dataclass(frozen=True)
class Actor:
    label: str
    user: AbstractBaseUser | AnonymousUser | None = None
    via: str = "admin"

    @classmethod
    def from_user(cls, user: AbstractBaseUser | AnonymousUser, via: str = "admin") -> "Actor":
        return cls(label=str(user.get_username()), user=user, via=via)


@dataclass(frozen=True)
class EventChange:
    event_id: uuid.UUID
    status_before: str
    status_after: str


def event_retry_failed(*, event_id: uuid.UUID) -> EventChange:
    """Queue a new round that re-runs only the failed items (a dead letter is requeued the same
    way). Raises OperationError when there is nothing to retry."""
    now = timezone.now()
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().filter(id=event_id).first()
        if event is None:
            raise OperationError("no such event")
        if event.status not in RETRYABLE:
            raise OperationError(f"an event in status '{event.status}' has nothing to retry")
        has_failed_work = event.items.exclude(status=ItemStatus.SUCCEEDED).exists() or not event.items.exists()
        if not has_failed_work:
            raise OperationError("every item already succeeded")
        status_before = event.status
        event.requeue(now=now)
        transaction.on_commit(lambda: event_dispatch(event_id=event.id))
    return EventChange(event.id, status_before, EventStatus.QUEUED)


def event_resolve(*, event_id: uuid.UUID, note: str) -> EventChange:
    """A person dealt with the failure outside mendhook (e.g. created the task by hand)."""
    if not note.strip():
        raise OperationError("a note is required to resolve an event")
    now = timezone.now()
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().filter(id=event_id).first()
        if event is None:
            raise OperationError("no such event")
        if event.status not in RESOLVABLE:
            raise OperationError(f"an event in status '{event.status}' does not need resolving")
        status_before = event.status
        event.resolve(now=now)
        return EventChange(event.id, status_before, EventStatus.MANUALLY_RESOLVED)
