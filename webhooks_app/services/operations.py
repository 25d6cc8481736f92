"""What people do to events that need them: retry the failed items, requeue a dead letter,
mark resolved. Every act is audited in OperatorAction; the admin and the API both call these."""

import uuid
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from webhooks_app.models import (
    EventStatus,
    ItemStatus,
    OperatorAction,
    OperatorActionKind,
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


def _audit(event: WebhookEvent, kind: str, actor: Actor, note: str, status_before: str) -> OperatorAction:
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    return OperatorAction.objects.create(
        event=event,
        kind=kind,
        actor_id=user.pk if user is not None else None,
        actor_label=actor.label,
        via=actor.via,
        note=note,
        status_before=status_before,
    )


def event_retry_failed(*, event_id: uuid.UUID, actor: Actor, note: str = "") -> OperatorAction:
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
        kind = (
            OperatorActionKind.REQUEUE_DEAD_LETTER
            if status_before == EventStatus.DEAD_LETTER
            else OperatorActionKind.RETRY_FAILED
        )
        event.requeue(now=now)
        action = _audit(event, kind, actor, note, status_before)
        transaction.on_commit(lambda: event_dispatch(event_id=event.id))
    return action


def event_resolve(*, event_id: uuid.UUID, actor: Actor, note: str) -> OperatorAction:
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
        return _audit(event, OperatorActionKind.RESOLVE, actor, note.strip(), status_before)
