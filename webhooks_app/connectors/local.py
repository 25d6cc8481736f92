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

    def create_tasks(self, specs: list[TaskSpec]) -> dict[str, str]:
        # On a key that exists (left by an earlier attempt) the row is kept, not duplicated;
        # update_conflicts rather than ignore_conflicts so every row's id comes back.
        tasks = LocalTask.objects.bulk_create(
            [
                LocalTask(
                    organization_id=s.organization_id,
                    idempotency_key=s.idempotency_key,
                    entity_id=s.entity_id,
                    title=s.title,
                    description=s.description,
                    assignee=s.assignee,
                    due_at=s.due_at,
                )
                for s in specs
            ],
            update_conflicts=True,
            unique_fields=["idempotency_key"],
            update_fields=["idempotency_key"],  # a no-op update: the first creation stands
        )
        return {task.idempotency_key: f"local-{task.pk}" for task in tasks}
