"""Error records: failures of the working apps, grouped by fingerprint so a storm is one row.
What people did to them is in the audit (ops_app.models.audit)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ErrorSeverity(models.TextChoices):
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"
    CRITICAL = "critical", "Critical"


# Higher wins when one group sees several severities (see ops_app.errors).
SEVERITY_RANK = {ErrorSeverity.WARNING: 1, ErrorSeverity.ERROR: 2, ErrorSeverity.CRITICAL: 3}


class ErrorRecord(models.Model):
    """One group of identical failures: same place, same code, same message once numbers and ids
    are stripped. The context columns describe the most recent occurrence.

    Context ids are plain values, not foreign keys: a record must be writable whatever the
    state of the rows it mentions (not yet committed, rolled back, deleted by retention)."""

    fingerprint = models.CharField(max_length=64, unique=True)
    function = models.CharField(max_length=200, help_text="Task or function where it happened")
    action = models.CharField(max_length=100, blank=True, help_text="What it was doing, e.g. create_item")
    error_code = models.CharField(max_length=50, blank=True)
    logger = models.CharField(max_length=200, blank=True)
    severity = models.CharField(max_length=10, choices=ErrorSeverity.choices, default=ErrorSeverity.ERROR)

    message = models.TextField()
    stack = models.TextField(blank=True)
    request_payload = models.JSONField(null=True, blank=True)

    organization_id = models.BigIntegerField(null=True, blank=True)
    event_id = models.UUIDField(null=True, blank=True)
    workflow_run_id = models.CharField(max_length=64, blank=True)
    lead_id = models.CharField(max_length=64, blank=True)
    campaign_id = models.CharField(max_length=64, blank=True)

    occurrences = models.PositiveIntegerField(default=1)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    resolved = models.BooleanField(default=False)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution_note = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_seen_at"]
        permissions = [("resolve_errorrecord", "Can resolve and reopen error records")]
        indexes = [
            # The dashboard's "unresolved critical" count and the default admin filter.
            models.Index(
                fields=["severity", "-last_seen_at"], condition=Q(resolved=False), name="errorrecord_unresolved_idx"
            ),
            # "What has this task been failing with lately?"
            models.Index(fields=["function", "-last_seen_at"], name="errorrecord_function_idx"),
        ]

    def __str__(self) -> str:
        code = f"[{self.error_code}] " if self.error_code else ""
        return f"{self.function}: {code}{self.message[:80]}"
