"""Acts on events: retry the failed items, requeue dead letters, mark manually resolved. The
state changes are webhooks_app's operations; the plans mirror their checks, which decide again
when the act runs."""

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from ops_app.acts.base import Act, Change, Plan
from ops_app.models import AuditAct
from webhooks_app.models import EventItem, EventStatus, ItemStatus, WebhookEvent
from webhooks_app.services.operations import (
    RESOLVABLE,
    RETRYABLE,
    Actor,
    OperationError,
    event_resolve,
    event_retry_failed,
)


def _items_by_event(events: Sequence[WebhookEvent]) -> dict[Any, list[EventItem]]:
    items: dict[Any, list[EventItem]] = {event.pk: [] for event in events}
    for item in EventItem.objects.filter(event__in=list(events)).order_by("event_id", "number"):
        items[item.event_id].append(item)
    return items


def _planner(
    statuses: tuple[str, ...], verb: str, *, reruns_items: bool
) -> Callable[[Sequence[WebhookEvent]], list[Plan]]:
    def plan_many(events: Sequence[WebhookEvent]) -> list[Plan]:
        items = _items_by_event(events)
        plans = []
        for event in events:
            if event.status not in statuses:
                plans.append(Plan(event, False, f"{event.get_status_display().lower()}: nothing to {verb}"))
                continue
            mine = items[event.pk]
            open_items = tuple(i for i in mine if i.status != ItemStatus.SUCCEEDED)
            if reruns_items and mine and not open_items:
                plans.append(Plan(event, False, "every item already succeeded"))
                continue
            plans.append(Plan(event, True, open_items=open_items, kept_items=len(mine) - len(open_items)))
        return plans

    return plan_many


def _retry(*, target_id: uuid.UUID, actor: Actor, note: str) -> Change:
    return event_retry_failed(event_id=target_id)


def _resolve(*, target_id: uuid.UUID, actor: Actor, note: str) -> Change:
    return event_resolve(event_id=target_id, note=note)


RETRY_FAILED_ITEMS = Act(
    name=AuditAct.RETRY_FAILED_ITEMS,
    title="Retry failed items now",
    button="Retry failed items",
    verb="retry",
    permission="webhooks_app.retry_event",
    model=WebhookEvent,
    needs_note=False,
    plan_many=_planner(RETRYABLE, "retry", reruns_items=True),
    run=_retry,
    refused_by=OperationError,
)
REQUEUE_DEAD_LETTERS = Act(
    name=AuditAct.REQUEUE_DEAD_LETTERS,
    title="Requeue dead letters",
    button="Requeue",
    verb="requeue",
    permission="webhooks_app.retry_event",
    model=WebhookEvent,
    needs_note=False,
    plan_many=_planner((EventStatus.DEAD_LETTER,), "requeue", reruns_items=True),
    run=_retry,
    refused_by=OperationError,
)
MARK_RESOLVED = Act(
    name=AuditAct.MARK_RESOLVED,
    title="Mark manually resolved",
    button="Mark resolved",
    verb="resolve",
    permission="webhooks_app.resolve_event",
    model=WebhookEvent,
    needs_note=True,
    plan_many=_planner(RESOLVABLE, "resolve", reruns_items=False),
    run=_resolve,
    refused_by=OperationError,
)
EVENT_ACTS = (RETRY_FAILED_ITEMS, REQUEUE_DEAD_LETTERS, MARK_RESOLVED)


def event_retry_act(event: WebhookEvent) -> Act:
    """The retry that fits the event: a dead letter is requeued, anything else retried."""
    return REQUEUE_DEAD_LETTERS if event.status == EventStatus.DEAD_LETTER else RETRY_FAILED_ITEMS
