"""Events as the tests need them: a bare event in any state, one with a few items, one with the
ledger processing leaves behind, or a table of many."""

import uuid
from typing import Any

from tests.factories import EventItemFactory, WebhookEventFactory
from tests.support.signing import matter_payload
from webhooks_app.errors import FailureKind
from webhooks_app.models import EventAction, EventItem, EventStatus, ItemStatus, Source, WebhookEvent


def make_event(source: Source, **fields: Any) -> WebhookEvent:
    """An event of `source` as intake stores it (received, no entity id), with `fields` on top."""
    defaults = {
        "organization": source.organization,
        "source": source,
        "idempotency_key": uuid.uuid4().hex,
        "event_type": "matter.stage_changed",
        "entity_id": "",
        "payload": matter_payload(location="miami"),
    }
    return WebhookEventFactory(**{**defaults, **fields})


def with_items(event: WebhookEvent, *statuses: str) -> WebhookEvent:
    """Give `event` one item per status, numbered from 1; failed ones carry a recoverable code."""
    for number, status in enumerate(statuses, start=1):
        EventItemFactory(
            event=event,
            number=number,
            title=f"Task {number}",
            idempotency_key=f"{event.id}:{number}",
            status=status,
            error_code="ERR_ASSIGNEE_NO_CSC" if status == ItemStatus.FAILED else "",
        )
    return event


def event_with_ledger(
    source,
    *,
    failed=(6,),
    items=10,
    status=EventStatus.PARTIAL_FAILURE,
    code="ERR_ASSIGNEE_NO_CSC",
    error="No CSC found for location: naples",
    kind=FailureKind.RECOVERABLE,
    **fields,
) -> WebhookEvent:
    """An event as processing leaves it: a ledger of items, the failed ones in failure_details."""
    event = make_event(source, status=status, **fields)
    rows = []
    for number in range(1, items + 1):
        failing = number in failed
        rows.append(
            EventItem(
                event=event,
                number=number,
                title=f"Task {number}" if number != 6 else "Send Initial Consultation Packet",
                idempotency_key=f"{event.id}:{number}",
                status=ItemStatus.FAILED if failing else ItemStatus.SUCCEEDED,
                downstream_id="" if failing else f"local-{number}",
                error=error if failing else "",
                error_code=code if failing else "",
                failure_kind=kind if failing else "",
                attempts=1,
            )
        )
    EventItem.objects.bulk_create(rows)
    failures = [row.failure_detail() for row in rows if row.status == ItemStatus.FAILED]
    WebhookEvent.objects.filter(id=event.id).update(
        success=not failures,
        action=EventAction.PARTIAL_FAILURE if failures else EventAction.CREATED_TASKS,
        tasks_created=items - len(failures),
        tasks_failed=len(failures),
        failure_details=failures or None,
        last_error_code=code if failures else "",
        last_error=f"{len(failures)} item(s) failed; #{failed[0]}: {error}" if failures else "",
        attempts=1,
    )
    event.refresh_from_db()
    return event


def many_events(source, count: int) -> list[WebhookEvent]:
    """`count` received events in one INSERT: a table big enough to pass the admin's limits."""
    return WebhookEvent.objects.bulk_create(
        WebhookEvent(
            organization=source.organization,
            source=source,
            idempotency_key=f"bulk-{n}",
            event_type="matter.stage_changed",
            payload={},
        )
        for n in range(count)
    )
