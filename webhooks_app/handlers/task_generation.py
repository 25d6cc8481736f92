"""Task generation: a matter moved to a stage, so create that stage's tasks downstream.

Expected payload (Clio-style): {"id": ..., "type": "matter.stage_changed",
"data": {"matter_id": ..., "stage": ..., "location": ...}}.
"""

from datetime import timedelta
from typing import Any

from webhooks_app.connectors import TaskSpec, connector_for
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


def resolve_assignee(*, organization_id: int, role: str, location: str) -> str:
    rules = {
        rule.location: rule.assignee
        for rule in AssigneeRule.objects.filter(
            organization_id=organization_id, role=role, location__in=[location, AssigneeRule.ANY_LOCATION]
        )
    }
    assignee = rules.get(location) or rules.get(AssigneeRule.ANY_LOCATION)
    if assignee:
        return assignee
    code, message = MISSING_ROLE_CODES.get(
        role, (ErrorCode.ASSIGNEE_NOT_FOUND, f"No {role} found for location: {{location}}")
    )
    raise ProcessingError(message.format(location=location or "(none)"), code=code)


def ledger_expand(event: WebhookEvent, stage: str) -> None:
    """Create the event's items from its templates, once. A retry finds them and keeps them."""
    if event.items.exists():
        return
    templates = TaskTemplate.objects.filter(
        organization_id=event.organization_id, trigger_event_type=event.event_type, stage=stage
    )
    EventItem.objects.bulk_create(
        [
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
        ],
        ignore_conflicts=True,  # a concurrent attempt (lease takeover) may have expanded already
    )


@register(SourceKind.CLIO, "matter.stage_changed")
@register(SourceKind.GENERIC, "matter.stage_changed")
def generate_tasks(event: WebhookEvent) -> HandlerResult:
    matter_id, stage, location = _matter(event.payload)
    ledger_expand(event, stage)
    connector = connector_for(event.source)
    pending = list(event.items.filter(status=ItemStatus.PENDING).order_by("number"))
    if not pending and not event.items.exists():
        return HandlerResult(action_without_items=EventAction.IGNORED)
    for item in pending:
        # Each item commits on its own: a worker dying mid-way keeps what was recorded, and the
        # downstream idempotency key covers the one item whose outcome was not.
        try:
            assignee = resolve_assignee(
                organization_id=event.organization_id, role=item.assignee_role, location=location
            )
            downstream_id = connector.create_task(
                TaskSpec(
                    organization_id=event.organization_id,
                    entity_id=matter_id,
                    title=item.title,
                    description=item.description,
                    assignee=assignee,
                    due_at=item.due_at,
                    idempotency_key=item.idempotency_key,
                )
            )
        except ProcessingError as error:
            item.mark_failed(error)
        else:
            item.mark_succeeded(downstream_id=downstream_id, assignee=assignee)
    return HandlerResult()
