"""Task generation: a matter moved to a stage, so create that stage's tasks downstream.

Expected payload (Clio-style): {"id": ..., "type": "matter.stage_changed",
"data": {"matter_id": ..., "stage": ..., "location": ...}}.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from webhooks_app.connectors import BatchConnector, Connector, TaskSpec, connector_for
from webhooks_app.connectors.local import LocalConnector
from webhooks_app.errors import ErrorCode, ProcessingError
from webhooks_app.handlers import HandlerResult, register
from webhooks_app.handlers.task_config import TaskConfig, task_config
from webhooks_app.models import EventAction, EventItem, ItemStatus, SourceKind, WebhookEvent

MISSING_ROLE_CODES = {
    "csc": (ErrorCode.ASSIGNEE_NO_CSC, "No CSC found for location: {location}"),
    "paralegal": (ErrorCode.ASSIGNEE_NO_PARALEGAL, "No paralegal found for location: {location}"),
}


def _matter(payload: dict[str, Any]) -> tuple[str, str, str]:
    data = payload.get("data")
    if not isinstance(data, dict):
        raise ProcessingError("payload has no 'data' object", code=ErrorCode.VALIDATION)
    missing = [k for k in ("matter_id", "stage") if data.get(k) in (None, "")]
    if missing:
        raise ProcessingError(f"payload data lacks {', '.join(missing)}", code=ErrorCode.VALIDATION)
    return str(data["matter_id"]), str(data["stage"]), str(data.get("location") or "")


class AssigneeDirectory:
    """The organization's assignee rules for one location."""

    def __init__(self, *, config: TaskConfig, location: str) -> None:
        self.location = location
        self.config = config

    def resolve(self, role: str) -> str:
        assignee = self.config.assignee(role, self.location)
        if assignee:
            return assignee
        code, message = MISSING_ROLE_CODES.get(
            role, (ErrorCode.ASSIGNEE_NOT_FOUND, f"No {role} found for location: {{location}}")
        )
        raise ProcessingError(message.format(location=self.location or "(none)"), code=code)


def ledger_build(event: WebhookEvent, stage: str, config: TaskConfig) -> list[EventItem]:
    """The event's items from its stage's templates, unsaved and pending."""
    return [
        EventItem(
            event=event,
            number=t.task_number,
            title=t.title,
            description=t.description,
            assignee_role=t.assignee_role,
            due_at=event.received_at + timedelta(days=t.due_offset_days),
            idempotency_key=f"{event.id}:{t.task_number}",
        )
        for t in config.templates_for(event.event_type, stage)
    ]


@register(SourceKind.CLIO, "matter.stage_changed")
@register(SourceKind.GENERIC, "matter.stage_changed")
def generate_tasks(event: WebhookEvent) -> HandlerResult:
    matter_id, stage, location = _matter(event.payload)
    # The ledger is expanded once; a retry finds it and works only its pending items. The
    # first attempt (the claim counted it: attempts == 1) has none to find.
    items = list(event.items.order_by("number")) if event.attempts > 1 else []
    config = task_config(event.organization)
    unsaved = not items
    if unsaved:
        items = ledger_build(event, stage, config)
        if not items:
            return HandlerResult(action_without_items=EventAction.IGNORED)
    pending = [i for i in items if i.status == ItemStatus.PENDING]
    directory = AssigneeDirectory(config=config, location=location)
    connector = connector_for(event.source)
    if isinstance(connector, LocalConnector):
        write = _batch_write(event, matter_id, pending, directory, connector, unsaved=unsaved)
        return HandlerResult(items=items, write=write)
    if unsaved:
        # Recorded before the first network call, so a crash mid-way leaves a ledger.
        EventItem.objects.bulk_create(items)
    _create_one_by_one(event, matter_id, pending, directory, connector)
    return HandlerResult(items=items)


def _spec(event: WebhookEvent, matter_id: str, item: EventItem, assignee: str) -> TaskSpec:
    return TaskSpec(
        organization_id=event.organization_id,
        entity_id=matter_id,
        title=item.title,
        description=item.description,
        assignee=assignee,
        due_at=item.due_at,
        idempotency_key=item.idempotency_key,
    )


def _create_one_by_one(
    event: WebhookEvent, matter_id: str, pending: list[EventItem], directory: AssigneeDirectory, connector: Connector
) -> None:
    for item in pending:
        # Each item commits on its own, after its network call: a worker dying mid-way keeps
        # what was recorded, and the downstream idempotency key covers the one item whose
        # outcome was not.
        try:
            assignee = directory.resolve(item.assignee_role)
            downstream_id = connector.create_task(_spec(event, matter_id, item, assignee))
        except ProcessingError as error:
            item.mark_failed(error)
        else:
            item.mark_succeeded(downstream_id=downstream_id, assignee=assignee)


def _batch_write(
    event: WebhookEvent,
    matter_id: str,
    pending: list[EventItem],
    directory: AssigneeDirectory,
    connector: BatchConnector,
    *,
    unsaved: bool,
) -> Callable[[], None]:
    """Resolve assignees now; return the writes, which the processing service runs inside the
    outcome's transaction. The tasks live in our own database: creating them, recording their
    outcomes and the event's status in one transaction is all-or-nothing, and one commit per
    event instead of one per item (or two per event)."""
    specs: dict[int, TaskSpec] = {}
    for item in pending:
        try:
            specs[item.number] = _spec(event, matter_id, item, directory.resolve(item.assignee_role))
        except ProcessingError as error:
            item.apply_failure(error)

    def write() -> None:
        created = connector.create_tasks(list(specs.values())) if specs else {}
        for item in pending:
            spec = specs.get(item.number)
            if spec is not None:
                item.apply_success(downstream_id=created[spec.idempotency_key], assignee=spec.assignee)
        if unsaved:  # first attempt: the ledger is written with its outcomes in one insert
            EventItem.objects.bulk_create(pending)
        elif pending:
            EventItem.objects.bulk_update(pending, EventItem.OUTCOME_FIELDS)

    return write
