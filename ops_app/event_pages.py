"""What the event's admin page reads off an event and its ledger: the failure table, the header
counts, and the hints on fixing the cause, matched to the error codes of the failures."""

from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.urls import reverse

from webhooks_app.errors import ErrorCode, FailureKind, failure_kind
from webhooks_app.models import EventItem, EventStatus, ItemStatus, WebhookEvent

# A worker may be running the event right now: its ledger moves under the page.
IN_FLIGHT = (EventStatus.RECEIVED, EventStatus.QUEUED, EventStatus.PROCESSING)


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
    """The seed's failure_details, with whether each failure can be retried (from the ledger).
    While a worker runs the event, the ledger is the truth: details of items that have since
    succeeded are left out."""
    by_number = {item.number: item for item in items}
    rows = []
    for detail in event.failure_details or []:
        code = str(detail.get("error_code") or "")
        item = by_number.get(detail.get("task_number"))
        if item is not None and item.status != ItemStatus.FAILED and event.status in IN_FLIGHT:
            continue
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


def ledger_counts(items: list[EventItem]) -> dict[str, int]:
    """The header's counts, from the ledger rather than the event's totals, which are written
    only when an attempt ends: so header and ledger agree while a retry runs."""
    counts = Counter(item.status for item in items)
    return {
        "succeeded": counts[ItemStatus.SUCCEEDED],
        "failed": counts[ItemStatus.FAILED],
        "pending": counts[ItemStatus.PENDING],
    }


@dataclass(frozen=True)
class CauseHint:
    codes: tuple[str, ...]
    text: str
    link_text: str = ""
    url: str = ""


def cause_hints(event: WebhookEvent, items: list[EventItem]) -> list[CauseHint]:
    """One hint per kind of cause among the event's failures, in the order of the catalogue."""
    codes = {i.error_code for i in items if i.status == ItemStatus.FAILED and i.error_code}
    if event.last_error_code and not codes:
        codes.add(event.last_error_code)
    errors = {i.error_code: i.error for i in items if i.status == ItemStatus.FAILED and i.error}
    hints = []
    assignee = sorted(c for c in codes if c.startswith("ERR_ASSIGNEE_"))
    if assignee:
        hints.append(
            CauseHint(
                tuple(assignee),
                "No one to assign the task to: add the missing assignee rule (role and location), then retry.",
                "assignee rules",
                reverse("admin:webhooks_app_assigneerule_changelist"),
            )
        )
    downstream = [
        c
        for c in (ErrorCode.CLIO_API_FAILED, ErrorCode.DOWNSTREAM_REJECTED, ErrorCode.TIMEOUT, ErrorCode.CONNECTION)
        if c in codes
    ]
    if downstream:
        said = "; ".join(f"{c}: {errors[c]}" for c in downstream if c in errors) or event.last_error
        hints.append(
            CauseHint(
                tuple(downstream),
                f"The downstream system failed ({said or 'no answer recorded'}). Check its status page and the "
                "source's connector settings; retry once it answers again.",
                "source settings",
                reverse("admin:webhooks_app_source_change", args=[event.source_id]),
            )
        )
    if ErrorCode.RATE_LIMITED in codes:
        hints.append(
            CauseHint(
                (ErrorCode.RATE_LIMITED,),
                "The downstream system rate-limited mendhook; the automatic retry waits for its Retry-After. "
                "Retrying now will likely be limited again.",
            )
        )
    if ErrorCode.VALIDATION in codes:
        hints.append(
            CauseHint(
                (ErrorCode.VALIDATION,),
                "The payload failed validation: the same payload fails again. Fix the sender or the task "
                "template, or resolve the event with a note.",
            )
        )
    if ErrorCode.INTERNAL in codes:
        hints.append(
            CauseHint(
                (ErrorCode.INTERNAL,),
                "An unexpected error in mendhook: see the error records for the stack, fix, then retry.",
                "error records",
                reverse("admin:ops_app_errorrecord_changelist"),
            )
        )
    return hints
