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
    # Outbound notifications to customers' endpoints: a slow receiver never delays processing.
    OUTBOUND = "outbound"


ALL_QUEUES = ",".join(q.value for q in Queue)

# The queue of each task, by name or task-module prefix; each task module's tasks land on one
# queue. Celery's routes (and Flower's view) derive from this, so a queue is named only here.
QUEUE_OF_TASK: dict[str, Queue] = {
    "webhooks_app.tasks.process_event": Queue.WEBHOOKS,
    "webhooks_app.tasks.send_dead_letter_alert": Queue.ALERTS,
    "webhooks_app.tasks.dispatch_due_retries": Queue.MAINTENANCE,
    "webhooks_app.tasks.sweep_undispatched_events": Queue.MAINTENANCE,
    "webhooks_app.tasks.heal_stuck_events": Queue.MAINTENANCE,
    "workflows_app.tasks.dispatch_due_runs": Queue.MAINTENANCE,
    "workflows_app.tasks.heal_stuck_runs": Queue.MAINTENANCE,
    "webhooks_app.tasks.deliver_outbound": Queue.OUTBOUND,
    "webhooks_app.tasks.send_outbound_alert": Queue.ALERTS,
    "webhooks_app.tasks.dispatch_due_deliveries": Queue.MAINTENANCE,
    "webhooks_app.tasks.disable_failing_endpoints": Queue.MAINTENANCE,
    "workflows_app.tasks.*": Queue.WORKFLOWS,
    # Alert messages ride the alerts queue like dead-letter alerts (an exact name wins over the
    # ops_app wildcard below).
    "ops_app.tasks.send_alert_notifications": Queue.ALERTS,
    "ops_app.tasks.*": Queue.MAINTENANCE,
}
TASK_ROUTES = {pattern: {"queue": queue.value} for pattern, queue in QUEUE_OF_TASK.items()}
