"""Alerts on trends: one row per episode of a condition in a scope (an organization, or the
whole installation), from when it started to when it recovered."""

from datetime import datetime

from django.db import models
from django.db.models import Q

from webhooks_app.models import Organization

GLOBAL_SCOPE = "global"


def scope_key(organization_id: int | None) -> str:
    """The scope as one non-null value, so the open-alert constraint can hold it (NULLs never
    collide in a unique index)."""
    return GLOBAL_SCOPE if organization_id is None else f"org:{organization_id}"


class AlertCondition(models.TextChoices):
    DEAD_LETTERS = "dead_letters", "Dead letters in the last hour"
    SUCCESS_RATE = "success_rate", "Success rate over the last hour"
    AVERAGE_ATTEMPTS = "average_attempts", "Average attempts over the last hour"
    QUEUE_DEPTH = "queue_depth", "Messages waiting in a queue"
    OLDEST_WAITING = "oldest_waiting", "Oldest waiting event"
    BREAKER_OPEN = "breaker_open", "Circuit breaker open"


class AlertState(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class AlertQuerySet(models.QuerySet["Alert"]):
    def resolve(self, *, alert_id: int, now: datetime, value: float | None) -> bool:
        """Firing -> resolved, once: of two evaluations racing, exactly one sees True."""
        return (
            self.filter(id=alert_id, state=AlertState.FIRING).update(
                state=AlertState.RESOLVED, ended_at=now, last_value=value, updated_at=now
            )
            == 1
        )

    def mark_notified(self, *, alert_id: int, state: AlertState, now: datetime) -> bool:
        """Record that the start (or the recovery) went out; False if it already had."""
        field = "notified_start_at" if state == AlertState.FIRING else "notified_end_at"
        return self.filter(id=alert_id, **{f"{field}__isnull": True}).update(**{field: now}) == 1


class Alert(models.Model):
    condition = models.CharField(max_length=30, choices=AlertCondition.choices)
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="+", help_text="Empty: global"
    )
    scope = models.CharField(max_length=40, help_text="'global' or 'org:<id>'")
    # What the condition is about within its scope: a queue's or a breaker's name; else empty.
    subject = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=10, choices=AlertState.choices, default=AlertState.FIRING)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField()
    message = models.TextField()
    notified_start_at = models.DateTimeField(null=True, blank=True)
    notified_end_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # One open episode per condition and scope: two evaluations running at once cannot
            # both start one (the loser's insert fails and it sends nothing).
            models.UniqueConstraint(
                fields=["condition", "scope", "subject"], condition=Q(state="firing"), name="uniq_firing_alert"
            )
        ]
        indexes = [
            # GET /api/v1/alerts and the admin list: newest first per state.
            models.Index(fields=["state", "-started_at"], name="alert_state_started_idx"),
        ]

    def __str__(self) -> str:
        where = self.organization.slug if self.organization else "global"
        return f"{self.get_condition_display()} ({where}{', ' + self.subject if self.subject else ''})"
