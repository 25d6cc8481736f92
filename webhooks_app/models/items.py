"""The item ledger: one row per thing an event was meant to produce, with its outcome."""

from django.db import models
from django.utils import timezone

from webhooks_app.errors import FailureKind, ProcessingError
from webhooks_app.models.events import WebhookEvent


class ItemStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class EventItem(models.Model):
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="items")
    number = models.PositiveSmallIntegerField()
    # Snapshot of the template at expansion time, so a retry creates what the first try meant to.
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    assignee_role = models.CharField(max_length=50, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)

    status = models.CharField(max_length=20, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    # Sent downstream with every creation request, so no retry can create the item twice.
    idempotency_key = models.CharField(max_length=200, unique=True)
    assignee = models.CharField(max_length=200, blank=True)
    downstream_id = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    failure_kind = models.CharField(max_length=20, choices=FailureKind.choices, blank=True)
    # Seconds the downstream asked us to wait before asking again (429 Retry-After): the next
    # attempt of the event starts no sooner than the largest of these among its failed items.
    retry_after = models.FloatField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["event", "number"]
        constraints = [models.UniqueConstraint(fields=["event", "number"], name="uniq_item_number")]
        indexes = [models.Index(fields=["error_code"], name="item_error_code_idx")]

    def __str__(self) -> str:
        return f"#{self.number} {self.title}"

    @property
    def recoverable(self) -> bool:
        return self.status == ItemStatus.FAILED and self.failure_kind != FailureKind.PERMANENT

    # Fields an outcome changes.
    OUTCOME_FIELDS = (
        "status",
        "downstream_id",
        "assignee",
        "error",
        "error_code",
        "failure_kind",
        "retry_after",
        "attempts",
        "updated_at",
    )

    def apply_success(self, *, downstream_id: str, assignee: str) -> None:
        self.status = ItemStatus.SUCCEEDED
        self.downstream_id = downstream_id
        self.assignee = assignee
        self.error = self.error_code = self.failure_kind = ""
        self.retry_after = None
        self.attempts += 1
        self.updated_at = timezone.now()

    def apply_failure(self, error: ProcessingError) -> None:
        self.status = ItemStatus.FAILED
        self.error = error.message
        self.error_code = error.code
        self.failure_kind = error.kind
        self.retry_after = error.retry_after
        self.attempts += 1
        self.updated_at = timezone.now()

    def mark_succeeded(self, *, downstream_id: str, assignee: str) -> None:
        self.apply_success(downstream_id=downstream_id, assignee=assignee)
        self.save(update_fields=self.OUTCOME_FIELDS)

    def mark_failed(self, error: ProcessingError) -> None:
        self.apply_failure(error)
        self.save(update_fields=self.OUTCOME_FIELDS)

    def failure_detail(self) -> dict[str, object]:
        return {
            "task_title": self.title,
            "task_number": self.number,
            "error": self.error,
            "error_code": self.error_code,
        }
