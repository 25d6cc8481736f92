"""The one audit of operator acts, whatever they act on (events, error groups, and the workflow
and outbound acts to come): who, when, what, through which door, why, and the status it moved.
Queryable, unlike Django's LogEntry, and shown on each target's page."""

from typing import Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone


class AuditVia(models.TextChoices):
    ADMIN = "admin", "Admin"
    API = "api", "API"
    CLI = "cli", "Command line"
    # Nobody acted: the platform did (an error group that recurred or whose cause is gone).
    SYSTEM = "system", "System"


class AuditAct(models.TextChoices):
    """Every act the audit knows; the act registry (ops_app.acts) names its acts from here."""

    RETRY_FAILED_ITEMS = "retry_failed_items", "Retried failed items"
    REQUEUE_DEAD_LETTERS = "requeue_dead_letters", "Requeued dead letter"
    MARK_RESOLVED = "mark_resolved", "Marked manually resolved"
    RESOLVE_ERROR_GROUP = "resolve_error_group", "Resolved"
    REOPEN_ERROR_GROUP = "reopen_error_group", "Reopened"
    RECURRED = "recurred", "Reopened by a new occurrence"
    RESET_BREAKER = "reset_breaker", "Reset circuit breaker"
    RETRY_RUN_STEP = "retry_run_step", "Retried the run's step now"
    SKIP_RUN_STEP = "skip_run_step", "Skipped the run's step"
    RESET_RUN_TO_STEP = "reset_run_to_step", "Reset the run to a step"
    CANCEL_RUN = "cancel_run", "Cancelled the run"
    RETRY_CALL_ACTIONS = "retry_call_actions", "Retried failed disposition actions"
    # Outbound notifications (ops_app.acts.outbound).
    RETRY_DELIVERY = "retry_delivery", "Retried delivery"
    RETRY_MESSAGE = "retry_message", "Retried message"
    RECOVER_ENDPOINT = "recover_endpoint", "Recovered endpoint since a time"
    ENABLE_ENDPOINT = "enable_endpoint", "Enabled endpoint"
    DISABLE_ENDPOINT = "disable_endpoint", "Disabled endpoint"


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    # Content types by natural key, not through ContentType's process-wide id cache: a worker
    # lives longer than a content type row may (a test database is flushed and refilled with
    # new ids under running workers), and an audit write must not fail on a stale id.

    def for_target(self, target: models.Model) -> "AuditEntryQuerySet":
        opts = target._meta
        return self.filter(
            target_type__app_label=opts.app_label, target_type__model=opts.model_name, target_id=str(target.pk)
        )

    def record(self, *, target: models.Model, **fields: Any) -> "AuditEntry":
        """Write one entry about `target`."""
        opts = target._meta
        target_type, _ = ContentType.objects.get_or_create(app_label=opts.app_label, model=opts.model_name)
        return self.create(target_type=target_type, target_id=str(target.pk), **fields)


class AuditEntry(models.Model):
    # A person (admin, or staff over the API) or null, with the API key or "system" in actor_label.
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_label = models.CharField(max_length=200, help_text="Who, as shown: username or API key name")
    via = models.CharField(max_length=10, choices=AuditVia.choices)
    act = models.CharField(max_length=40, choices=AuditAct.choices)
    # Text, not a foreign key: targets have UUID and integer keys, and the audit outlives them.
    target_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    target_id = models.CharField(max_length=64)
    target = GenericForeignKey("target_type", "target_id")
    note = models.TextField(blank=True)
    status_before = models.CharField(max_length=30, blank=True)
    status_after = models.CharField(max_length=30, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        # The history panel of one event or error group.
        indexes = [models.Index(fields=["target_type", "target_id", "-created_at"], name="audit_target_idx")]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.act} {self.target_type_id}:{self.target_id}"
