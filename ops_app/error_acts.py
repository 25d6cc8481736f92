"""What people do to error groups: resolve them with a note, reopen them. Audited."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from ops_app.models import ErrorRecord, ErrorRecordAction, ErrorRecordActionKind

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class ErrorRecordStateError(Exception):
    """The act does not apply to the record in its current state. Safe to show."""


def error_record_resolve(*, record_id: int, user: AbstractBaseUser | AnonymousUser, note: str) -> ErrorRecordAction:
    if not note.strip():
        raise ErrorRecordStateError("a note is required to resolve an error")
    with transaction.atomic():
        record = ErrorRecord.objects.select_for_update().filter(id=record_id).first()
        if record is None:
            raise ErrorRecordStateError("no such error record")
        if record.resolved:
            raise ErrorRecordStateError("already resolved")
        now = timezone.now()
        actor_id = user.pk if user.is_authenticated else None
        ErrorRecord.objects.filter(id=record.id).update(
            resolved=True, resolved_at=now, resolved_by_id=actor_id, resolution_note=note.strip(), updated_at=now
        )
        return ErrorRecordAction.objects.create(
            record=record,
            kind=ErrorRecordActionKind.RESOLVE,
            actor_id=actor_id,
            actor_label=user.get_username(),
            note=note.strip(),
            created_at=now,
        )


def error_record_reopen(*, record_id: int, user: AbstractBaseUser | AnonymousUser, note: str = "") -> ErrorRecordAction:
    with transaction.atomic():
        record = ErrorRecord.objects.select_for_update().filter(id=record_id).first()
        if record is None:
            raise ErrorRecordStateError("no such error record")
        if not record.resolved:
            raise ErrorRecordStateError("not resolved")
        now = timezone.now()
        ErrorRecord.objects.filter(id=record.id).update(
            resolved=False, resolved_at=None, resolved_by=None, resolution_note="", updated_at=now
        )
        return ErrorRecordAction.objects.create(
            record=record,
            kind=ErrorRecordActionKind.REOPEN,
            actor_id=user.pk if user.is_authenticated else None,
            actor_label=user.get_username(),
            note=note.strip(),
            created_at=now,
        )
