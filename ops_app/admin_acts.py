"""What an act on events will do, worked out before anything is done: the plans shown on the
confirmation page and the event page, and the failure table."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webhooks_app.errors import FailureKind, failure_kind
from webhooks_app.models import (
    EventItem,
    EventStatus,
    ItemStatus,
    OperatorAction,
    WebhookEvent,
)
from webhooks_app.services.operations import (
    RESOLVABLE,
    RETRYABLE,
    event_resolve,
    event_retry_failed,
)


@dataclass(frozen=True)
class EventPlan:
    """What one act does to one event, shown before it is done."""

    event: WebhookEvent
    applies: bool
    reason: str = ""
    # Items not (yet) succeeded: re-run by a retry; left as they are by a resolution.
    open_items: tuple[EventItem, ...] = ()
    kept_items: int = 0


def _plan(event: WebhookEvent, items: list[EventItem], act: "Act") -> EventPlan:
    # Mirrors the checks of the operations, which decide again when the act runs.
    if event.status not in act.statuses:
        return EventPlan(event, False, f"{event.get_status_display().lower()}: nothing to {act.verb}")
    open_items = tuple(i for i in items if i.status != ItemStatus.SUCCEEDED)
    if act.reruns_items and items and not open_items:
        return EventPlan(event, False, "every item already succeeded")
    return EventPlan(event, True, open_items=open_items, kept_items=len(items) - len(open_items))


@dataclass(frozen=True)
class Act:
    name: str
    title: str
    permission: str  # codename in webhooks_app
    verb: str
    statuses: tuple[str, ...]
    reruns_items: bool
    needs_note: bool
    button: str
    run: Callable[..., OperatorAction]

    def plan(self, event: WebhookEvent, items: list[EventItem]) -> EventPlan:
        return _plan(event, items, self)


ACTS = {
    act.name: act
    for act in (
        Act(
            name="retry_failed_items",
            title="Retry failed items now",
            permission="retry_event",
            verb="retry",
            statuses=RETRYABLE,
            reruns_items=True,
            needs_note=False,
            button="Retry failed items",
            run=event_retry_failed,
        ),
        Act(
            name="requeue_dead_letters",
            title="Requeue dead letters",
            permission="retry_event",
            verb="requeue",
            statuses=(EventStatus.DEAD_LETTER,),
            reruns_items=True,
            needs_note=False,
            button="Requeue",
            run=event_retry_failed,
        ),
        Act(
            name="mark_resolved",
            title="Mark manually resolved",
            permission="resolve_event",
            verb="resolve",
            statuses=RESOLVABLE,
            reruns_items=False,
            needs_note=True,
            button="Mark resolved",
            run=event_resolve,
        ),
    )
}


def plans_for(act: Act, events: list[WebhookEvent]) -> list[EventPlan]:
    items: dict[Any, list[EventItem]] = {event.pk: [] for event in events}
    for item in EventItem.objects.filter(event__in=events).order_by("event_id", "number"):
        items[item.event_id].append(item)
    return [act.plan(event, items[event.pk]) for event in events]


@dataclass(frozen=True)
class FailureRow:
    number: Any
    title: str
    error: str
    code: str
    kind: str

    @property
    def recoverable(self) -> bool:
        return self.kind != FailureKind.PERMANENT


def failure_rows(event: WebhookEvent, items: list[EventItem]) -> list[FailureRow]:
    """The seed's failure_details, with whether each failure can be retried (from the ledger)."""
    by_number = {item.number: item for item in items}
    rows = []
    for detail in event.failure_details or []:
        code = str(detail.get("error_code") or "")
        item = by_number.get(detail.get("task_number"))
        kind = (item.failure_kind if item is not None else "") or failure_kind(code)
        rows.append(
            FailureRow(
                number=detail.get("task_number"),
                title=str(detail.get("task_title", "")),
                error=str(detail.get("error", "")),
                code=code,
                kind=kind,
            )
        )
    return rows
