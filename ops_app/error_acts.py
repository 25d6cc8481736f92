"""What happens to error groups: people resolve them with a note or reopen them, and the system
resolves a group whose cause is gone. State changes only; the act flow (ops_app.acts) audits."""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from ops_app.models import ErrorRecord

OPEN, RESOLVED = "open", "resolved"


class ErrorRecordStateError(Exception):
    """The act does not apply to the record in its current state. Safe to show."""


@dataclass(frozen=True)
class GroupChange:
    record_id: int
    status_before: str
    status_after: str


def error_record_resolve(*, record_id: int, user_id: int | None, note: str) -> GroupChange:
    if not note.strip():
        raise ErrorRecordStateError("a note is required to resolve an error")
    with transaction.atomic():
        record = ErrorRecord.objects.select_for_update().filter(id=record_id).first()
        if record is None:
            raise ErrorRecordStateError("no such error record")
        if record.resolved:
            raise ErrorRecordStateError("already resolved")
        now = timezone.now()
        ErrorRecord.objects.filter(id=record.id).update(
            resolved=True, resolved_at=now, resolved_by_id=user_id, resolution_note=note.strip(), updated_at=now
        )
    return GroupChange(record_id, OPEN, RESOLVED)


def error_record_reopen(*, record_id: int) -> GroupChange:
    with transaction.atomic():
        record = ErrorRecord.objects.select_for_update().filter(id=record_id).first()
        if record is None:
            raise ErrorRecordStateError("no such error record")
        if not record.resolved:
            raise ErrorRecordStateError("not resolved")
        ErrorRecord.objects.filter(id=record.id).update(
            resolved=False, resolved_at=None, resolved_by=None, resolution_note="", updated_at=timezone.now()
        )
    return GroupChange(record_id, RESOLVED, OPEN)
