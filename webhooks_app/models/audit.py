"""What people (and API clients) did to events: retries, resolutions, requeues. Queryable, unlike
Django's LogEntry, and shown on the event's page."""

from django.conf import settings
from django.db import models

from webhooks_app.models.events import WebhookEvent


class OperatorActionKind(models.TextChoices):
    RETRY_FAILED = "retry_failed", "Retried failed items"
    REQUEUE_DEAD_LETTER = "requeue_dead_letter", "Requeued dead letter"
    RESOLVE = "resolve", "Marked manually resolved"


class OperatorAction(models.Model):
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="operator_actions")
    kind = models.CharField(max_length=30, choices=OperatorActionKind.choices)
    # A person (admin) or, for API calls, null with the key named in actor_label.
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_label = models.CharField(max_length=200, help_text="Who, as shown: username or API key name")
    via = models.CharField(max_length=20, default="admin", help_text="admin, api or cli")
    note = models.TextField(blank=True)
    status_before = models.CharField(max_length=20)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["event", "-created_at"], name="operator_action_event_idx")]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.kind} {self.event_id}"
