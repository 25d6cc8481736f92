"""Queue names: one per kind of work, so each can be scaled and watched on its own."""

from enum import StrEnum


class Queue(StrEnum):
    # Inbound event processing: claims events, runs handlers, calls connectors.
    WEBHOOKS = "webhooks"
    # Outbound notifications (dead-letter alerts); a slow Slack never delays processing.
    ALERTS = "alerts"
    # Beat's periodic jobs: dispatching due retries, sweeping, self-healing.
    MAINTENANCE = "maintenance"
    # Multi-step workflows per entity.
    WORKFLOWS = "workflows"


ALL_QUEUES = ",".join(q.value for q in Queue)

# Routes by task-name prefix; each task module's tasks land on one queue.
TASK_ROUTES = {
    "webhooks_app.tasks.process_event": {"queue": Queue.WEBHOOKS.value},
    "webhooks_app.tasks.send_dead_letter_alert": {"queue": Queue.ALERTS.value},
    "webhooks_app.tasks.dispatch_due_retries": {"queue": Queue.MAINTENANCE.value},
    "webhooks_app.tasks.sweep_undispatched_events": {"queue": Queue.MAINTENANCE.value},
    "webhooks_app.tasks.heal_stuck_events": {"queue": Queue.MAINTENANCE.value},
    "workflows_app.tasks.*": {"queue": Queue.WORKFLOWS.value},
    "ops_app.tasks.*": {"queue": Queue.MAINTENANCE.value},
}
