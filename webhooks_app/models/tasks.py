"""What task generation expands an event into: templates, assignee rules, and the local
connector's own task table."""

from django.db import models

from webhooks_app.models.sources import ConnectorKind, Organization

__all__ = ["AssigneeRule", "ConnectorKind", "LocalTask", "TaskTemplate"]


class TaskTemplate(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="task_templates")
    trigger_event_type = models.CharField(max_length=100, default="matter.stage_changed")
    stage = models.CharField(max_length=100)
    task_number = models.PositiveSmallIntegerField()
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    due_offset_days = models.PositiveSmallIntegerField(default=1)
    assignee_role = models.CharField(max_length=50, help_text="e.g. csc, paralegal, attorney")

    class Meta:
        ordering = ["organization", "trigger_event_type", "stage", "task_number"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "trigger_event_type", "stage", "task_number"],
                name="uniq_template_number",
            )
        ]

    def __str__(self) -> str:
        return f"{self.stage} #{self.task_number}: {self.title}"


class AssigneeRule(models.Model):
    """Maps (role, location) to a downstream user. Location "*" matches any location."""

    ANY_LOCATION = "*"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="assignee_rules")
    role = models.CharField(max_length=50)
    location = models.CharField(max_length=100)
    assignee = models.CharField(max_length=200, help_text="Downstream user id or name")

    class Meta:
        ordering = ["organization", "role", "location"]
        constraints = [models.UniqueConstraint(fields=["organization", "role", "location"], name="uniq_assignee_rule")]

    def __str__(self) -> str:
        return f"{self.role}@{self.location} -> {self.assignee}"


class LocalTask(models.Model):
    """A task created by the local connector. The unique idempotency key is what makes a
    retried creation return the first row instead of a second one."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="local_tasks")
    idempotency_key = models.CharField(max_length=200, unique=True)
    entity_id = models.CharField(max_length=200)
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    assignee = models.CharField(max_length=200)
    due_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.title
