"""Diagnostics: configuration problems found before they fail work (seed 004
detectAndFixIssues). One row per episode of a problem, from when it was first found to when its
cause was gone (ops_app.diagnostics evaluates them)."""

from datetime import datetime

from django.db import models
from django.db.models import Q

from webhooks_app.models import Organization

__all__ = ["DIAGNOSTIC_SEVERITY_RANK", "Diagnostic", "DiagnosticKind", "DiagnosticSeverity"]


class DiagnosticKind(models.TextChoices):
    ASSIGNEE_RULE_MISSING = "assignee_rule_missing", "No assignee rule for a role at a location"
    SOURCE_SILENT = "source_silent", "Source silent far longer than usual"
    DISABLED_SOURCE_TRAFFIC = "disabled_source_traffic", "Disabled source still receiving traffic"
    DISPOSITION_WORKFLOW_UNUSABLE = "disposition_workflow_unusable", "Disposition starts an unusable workflow"
    LEAD_PHONE_INVALID = "lead_phone_invalid", "Lead without a valid phone in a workflow that calls or texts"
    BREAKER_OPEN = "breaker_open", "Circuit breaker open"


class DiagnosticSeverity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"


# Most severe first on the dashboard, the API and the command's output.
DIAGNOSTIC_SEVERITY_RANK = {DiagnosticSeverity.CRITICAL: 0, DiagnosticSeverity.WARNING: 1, DiagnosticSeverity.INFO: 2}


class DiagnosticQuerySet(models.QuerySet["Diagnostic"]):
    def open(self) -> "DiagnosticQuerySet":
        return self.filter(resolved_at__isnull=True)

    def most_severe_first(self) -> "DiagnosticQuerySet":
        rank = models.Case(
            *(models.When(severity=s, then=models.Value(r)) for s, r in DIAGNOSTIC_SEVERITY_RANK.items()),
            default=models.Value(len(DIAGNOSTIC_SEVERITY_RANK)),
        )
        return self.alias(rank=rank).order_by("rank", "-first_seen", "-id")

    def refresh(self, *, diagnostic_id: int, now: datetime, **fields: str) -> bool:
        """Still there: move last_seen on (and take the newest wording); False once resolved."""
        return self.filter(id=diagnostic_id, resolved_at__isnull=True).update(last_seen=now, **fields) == 1

    def resolve(self, *, diagnostic_id: int, now: datetime) -> bool:
        """Open -> resolved, once: of two evaluations racing, exactly one sees True."""
        return self.filter(id=diagnostic_id, resolved_at__isnull=True).update(resolved_at=now) == 1


class Diagnostic(models.Model):
    kind = models.CharField(max_length=40, choices=DiagnosticKind.choices)
    severity = models.CharField(max_length=10, choices=DiagnosticSeverity.choices)
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="+", help_text="Empty: global"
    )
    # The organization as one non-null value for the open-row constraint (NULLs never collide).
    scope = models.CharField(max_length=40, help_text="'global' or 'org:<id>'")
    # What it is about within its kind and scope: "csc@Naples", "source:12", a breaker's name.
    subject = models.CharField(max_length=200)
    message = models.TextField()
    fix = models.TextField(help_text="What to do about it")
    link = models.CharField(max_length=500, blank=True, help_text="The admin page that fixes it")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    objects = DiagnosticQuerySet.as_manager()

    class Meta:
        ordering = ["-first_seen", "-id"]
        constraints = [
            # One open row per problem: two evaluations at once cannot both open it (the loser's
            # insert fails and it refreshes the winner's row instead).
            models.UniqueConstraint(
                fields=["kind", "scope", "subject"], condition=Q(resolved_at__isnull=True), name="uniq_open_diagnostic"
            )
        ]
        indexes = [
            # GET /api/v1/diagnostics?state=resolved and the admin list: newest first.
            models.Index(fields=["-first_seen"], name="diagnostic_first_seen_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
