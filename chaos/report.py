"""What the run left behind, read from the platform's database once it is quiet."""

from collections import Counter
from dataclasses import dataclass

from django.db.models import Count, F

from chaos.client import Deliveries
from webhooks_app.models import EventStatus, LocalTask, ProcessingAttempt, TaskTemplate, WebhookEvent

# Where an event rests for good, or until a person acts.
SETTLED = {EventStatus.SUCCEEDED, EventStatus.PARTIAL_FAILURE, EventStatus.FAILED, EventStatus.DEAD_LETTER}


def unsettled_count() -> int:
    return WebhookEvent.objects.exclude(status__in=SETTLED).count()


@dataclass
class Figures:
    sent: int
    accepted: int
    rejected: int
    first_rejection: str
    gave_up: int
    client_retries: int
    lost: int
    missing_items: int
    duplicates: int
    stuck: int
    unlogged_attempts: int
    statuses: dict[str, int]
    attempts: int
    attempt_outcomes: dict[str, int]
    quiescence_seconds: float | None

    @property
    def passed(self) -> bool:
        # Every event the run sends is valid and signed: a rejection, or one not accepted, fails.
        return self.accepted == self.sent and not (
            self.rejected
            or self.lost
            or self.missing_items
            or self.duplicates
            or self.stuck
            or self.unlogged_attempts
            or self.gave_up
        )

    def lines(self) -> list[str]:
        quiet = f"{self.quiescence_seconds:.1f} s" if self.quiescence_seconds is not None else "not reached"
        return [
            f"sent:                      {self.sent}",
            f"accepted:                  {self.accepted}",
            f"rejected (4xx):            {self.rejected}"
            + (f" (first: {self.first_rejection})" if self.rejected else ""),
            f"gave up (client):          {self.gave_up}",
            f"client retries:            {self.client_retries}",
            f"lost:                      {self.lost + self.missing_items}"
            f" (no event row: {self.lost}; items missing: {self.missing_items})",
            f"duplicate downstream items: {self.duplicates}",
            f"stuck:                     {self.stuck}",
            f"attempts without log row:  {self.unlogged_attempts}",
            f"processing attempts:       {self.attempts} ({_counts(self.attempt_outcomes)})",
            f"statuses:                  {_counts(self.statuses)}",
            f"time to quiescence:        {quiet}",
        ]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key or 'open'}={n}" for key, n in sorted(counts.items()))


def figures_collect(*, deliveries: Deliveries, quiescence_seconds: float | None) -> Figures:
    event_ids = {str(i) for i in WebhookEvent.objects.values_list("id", flat=True)}
    accepted = set(deliveries.accepted.values())
    templates = TaskTemplate.objects.filter(stage="consultation").count()

    # Downstream: our own tasks table. Its idempotency key ("<event id>:<task number>") is
    # unique, so a duplicate would show as a matter (one per event) with too many tasks.
    rows = list(LocalTask.objects.values_list("idempotency_key", "entity_id"))
    per_event = Counter(key.split(":", 1)[0] for key, _ in rows)
    per_matter = Counter(matter for _, matter in rows)
    duplicates = sum(n - templates for n in per_matter.values() if n > templates)
    succeeded = WebhookEvent.objects.filter(status=EventStatus.SUCCEEDED).values_list("id", flat=True)
    missing_items = sum(1 for i in succeeded if per_event.get(str(i), 0) < templates)

    unlogged = WebhookEvent.objects.annotate(logged=Count("attempt_log")).exclude(logged=F("attempts")).count()
    statuses = dict(WebhookEvent.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return Figures(
        sent=deliveries.sent,
        accepted=len(accepted),
        rejected=len(deliveries.rejected),
        first_rejection=next(iter(deliveries.rejected.values()), ""),
        gave_up=len(deliveries.gave_up),
        client_retries=deliveries.retries,
        lost=len(accepted - event_ids),
        missing_items=missing_items,
        duplicates=duplicates,
        stuck=unsettled_count(),
        unlogged_attempts=unlogged,
        statuses=statuses,
        attempts=sum(WebhookEvent.objects.values_list("attempts", flat=True)),
        attempt_outcomes=dict(
            ProcessingAttempt.objects.values_list("outcome").annotate(n=Count("id")).values_list("outcome", "n")
        ),
        quiescence_seconds=quiescence_seconds,
    )
