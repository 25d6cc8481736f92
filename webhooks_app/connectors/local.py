"""Tasks stored in mendhook's own database: the embedded default and the demo."""

from webhooks_app.connectors.base import TaskSpec
from webhooks_app.models import LocalTask


class LocalConnector:
    def create_task(self, spec: TaskSpec) -> str:
        task, _ = LocalTask.objects.get_or_create(
            idempotency_key=spec.idempotency_key,
            defaults={
                "organization_id": spec.organization_id,
                "entity_id": spec.entity_id,
                "title": spec.title,
                "description": spec.description,
                "assignee": spec.assignee,
                "due_at": spec.due_at,
            },
        )
        return f"local-{task.pk}"
