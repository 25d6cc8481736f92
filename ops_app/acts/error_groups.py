"""Acts on error groups: resolve (with a note) and reopen; and the system's own resolve of
groups whose cause is gone, through the same flow and audit."""

import logging
from collections.abc import Callable, Sequence

from ops_app.acts.base import Act, ActRefused, Change, Plan, act_run
from ops_app.error_acts import ErrorRecordStateError, error_record_reopen, error_record_resolve
from ops_app.models import AuditAct, AuditVia, ErrorRecord
from webhooks_app.models import EventStatus, WebhookEvent
from webhooks_app.services.operations import Actor

logger = logging.getLogger(__name__)

# An event in one of these has nothing left to fix: the failure recorded about it is history.
EVENT_SETTLED = (EventStatus.SUCCEEDED, EventStatus.MANUALLY_RESOLVED)
SYSTEM = Actor(label="system", via=AuditVia.SYSTEM)
SETTLED_NOTE = "Its event has since succeeded or been resolved."


def _planner(*, applies_when_resolved: bool) -> Callable[[Sequence[ErrorRecord]], list[Plan]]:
    def plan_many(records: Sequence[ErrorRecord]) -> list[Plan]:
        return [
            Plan(record, True)
            if record.resolved == applies_when_resolved
            else Plan(record, False, "already resolved" if record.resolved else "already open")
            for record in records
        ]

    return plan_many


def _resolve(*, target_id: int, actor: Actor, note: str) -> Change:
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    return error_record_resolve(record_id=target_id, user_id=user.pk if user is not None else None, note=note)


def _reopen(*, target_id: int, actor: Actor, note: str) -> Change:
    return error_record_reopen(record_id=target_id)


RESOLVE_ERROR_GROUP = Act(
    name=AuditAct.RESOLVE_ERROR_GROUP,
    title="Resolve error groups",
    button="Resolve",
    verb="resolve",
    permission="ops_app.resolve_errorrecord",
    model=ErrorRecord,
    needs_note=True,
    plan_many=_planner(applies_when_resolved=False),
    run=_resolve,
    refused_by=ErrorRecordStateError,
)
REOPEN_ERROR_GROUP = Act(
    name=AuditAct.REOPEN_ERROR_GROUP,
    title="Reopen error groups",
    button="Reopen",
    verb="reopen",
    permission="ops_app.resolve_errorrecord",
    model=ErrorRecord,
    needs_note=False,
    plan_many=_planner(applies_when_resolved=True),
    run=_reopen,
    refused_by=ErrorRecordStateError,
)
ERROR_GROUP_ACTS = (RESOLVE_ERROR_GROUP, REOPEN_ERROR_GROUP)


def error_groups_resolve_settled(*, limit: int = 500) -> int:
    """Resolve open groups whose event has since succeeded or been resolved, as the system.
    Safe to run twice at once: the resolve locks the group and refuses one already resolved.
    A group that happens again reopens by itself (ops_app.errors records the recurrence)."""
    settled = WebhookEvent.objects.filter(status__in=EVENT_SETTLED).values("id")
    groups = list(ErrorRecord.objects.filter(resolved=False, event_id__in=settled).order_by("last_seen_at")[:limit])
    resolved = 0
    for group in groups:
        try:
            act_run(
                act=RESOLVE_ERROR_GROUP,
                target=group,
                actor=SYSTEM,
                note="Its event has since succeeded or been resolved.",
            )
        except ActRefused:
            continue  # someone (or another run) resolved it first
        resolved += 1
    if resolved:
        logger.info("resolved %d error group(s) whose event is settled", resolved, extra={"error_record": False})
    return resolved
