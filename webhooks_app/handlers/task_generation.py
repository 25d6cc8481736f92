"""Task generation: a matter moved to a stage, so create that stage's tasks downstream.

Expected payload (Clio-style): {"id": ..., "type": "matter.stage_changed",
"data": {"matter_id": ..., "stage": ..., "location": ...}}.
"""

from datetime import timedelta
from typing import Any

from django.db import transaction

from webhooks_app.connectors import BatchConnector, Connector, TaskSpec, connector_for
from webhooks_app.connectors.local import LocalConnector
from webhooks_app.errors import ErrorCode, ProcessingError
from webhooks_app.handlers import HandlerResult, register
from webhooks_app.models import (
    AssigneeRule,
    EventAction,
    EventItem,
    ItemStatus,
    SourceKind,
    TaskTemplate,
    WebhookEvent,
)

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
    """The organization's assignee rules for one location, loaded once per event."""

    def __init__(self, *, organization_id: int, location: str) -> None:
        self.location = location
        self.rules: dict[str, str] = {}
        rows = AssigneeRule.objects.filter(
            organization_id=organization_id, location__in=[location, AssigneeRule.ANY_LOCATION]
        ).values_list("role", "location", "assignee")
        # An exact location beats the "*" rule for the same role.
        for role, _location, assignee in sorted(rows, key=lambda r: r[1] == AssigneeRule.ANY_LOCATION):
            self.rules.setdefault(role, assignee)

    def resolve(self, role: str) -> str:
        assignee = self.rules.get(role)
        if assignee:
            return assignee
        code, message = MISSING_ROLE_CODES.get(
            role, (ErrorCode.ASSIGNEE_NOT_FOUND, f"No {role} found for location: {{location}}")
        )
        raise ProcessingError(message.format(location=self.location or "(none)"), code=code)


def ledger_build(event: WebhookEvent, stage: str) -> list[EventItem]:
    """The event's items from its stage's templates, unsaved and pending."""
    templates = TaskTemplate.objects.filter(
        organization_id=event.organization_id, trigger_event_type=event.event_type, stage=stage
    )
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
        for t in templates
    ]


@register(SourceKind.CLIO, "matter.stage_changed")
@register(SourceKind.GENERIC, "matter.stage_changed")
def generate_tasks(event: WebhookEvent) -> HandlerResult:
    matter_id, stage, location = _matter(event.payload)
    # The ledger is expanded once; a retry finds it and works only its pending items.
    items = list(event.items.order_by("number"))
    unsaved = not items
    if unsaved:
        items = ledger_build(event, stage)
        if not items:
            return HandlerResult(action_without_items=EventAction.IGNORED)
    pending = [i for i in items if i.status == ItemStatus.PENDING]
    directory = AssigneeDirectory(organization_id=event.organization_id, location=location)
    connector = connector_for(event.source)
    if isinstance(connector, LocalConnector):
        _create_in_one_transaction(event, matter_id, pending, directory, connector, unsaved=unsaved)
    else:
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


def _create_in_one_transaction(
    event: WebhookEvent,
    matter_id: str,
    pending: list[EventItem],
    directory: AssigneeDirectory,
    connector: BatchConnector,
    *,
    unsaved: bool,
) -> None:
    # The tasks live in our own database: creating them and recording the outcomes in one
    # transaction is all-or-nothing, and far cheaper than a commit per item.
    specs: dict[int, TaskSpec] = {}
    for item in pending:
        try:
            specs[item.number] = _spec(event, matter_id, item, directory.resolve(item.assignee_role))
        except ProcessingError as error:
            item.apply_failure(error)
    with transaction.atomic():
        created = connector.create_tasks(list(specs.values()))
        for item in pending:
            spec = specs.get(item.number)
            if spec is not None:
                item.apply_success(downstream_id=created[spec.idempotency_key], assignee=spec.assignee)
        if unsaved:  # first attempt: the ledger is written with its outcomes in one insert
            EventItem.objects.bulk_create(pending)
        else:
            for item in pending:
                item.save(update_fields=EventItem.OUTCOME_FIELDS)
