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
        # ignore_conflicts: rows a previous (rolled back or crashed) attempt left are kept.
        LocalTask.objects.bulk_create(
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
            ignore_conflicts=True,
        )
        keys = [s.idempotency_key for s in specs]
        return {
            key: f"local-{pk}"
            for key, pk in LocalTask.objects.filter(idempotency_key__in=keys).values_list("idempotency_key", "pk")
        }
