"""What each retention run deleted (ops_app.retention), shown in the admin."""

from django.db import models


class RetentionRun(models.Model):
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    events_deleted = models.PositiveBigIntegerField(default=0)
    items_deleted = models.PositiveBigIntegerField(default=0)
    attempts_deleted = models.PositiveBigIntegerField(default=0)
    error_records_deleted = models.PositiveBigIntegerField(default=0)
    audit_entries_deleted = models.PositiveBigIntegerField(default=0)
    step_executions_deleted = models.PositiveBigIntegerField(default=0)
    batches = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"retention {self.started_at:%Y-%m-%d %H:%M}: {self.events_deleted} events"
