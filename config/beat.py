"""Every periodic job in one place. Each entry expires before its next run is due, so a
backlog after an outage never piles up copies of the same sweep."""

from typing import Any

from config.queues import Queue

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "dispatch-due-retries": {
        "task": "webhooks_app.tasks.dispatch_due_retries",
        "schedule": 5.0,
        "options": {"queue": Queue.MAINTENANCE.value, "expires": 4.0},
    },
    "sweep-undispatched-events": {
        "task": "webhooks_app.tasks.sweep_undispatched_events",
        "schedule": 10.0,
        "options": {"queue": Queue.MAINTENANCE.value, "expires": 9.0},
    },
    "resume-stalled-replays": {
        "task": "ops_app.tasks.resume_stalled_replays",
        "schedule": 60.0,
        "options": {"queue": Queue.MAINTENANCE.value, "expires": 55.0},
    },
    "resolve-settled-error-groups": {
        "task": "ops_app.tasks.resolve_settled_error_groups",
        "schedule": 300.0,
        "options": {"queue": Queue.MAINTENANCE.value, "expires": 290.0},
    },
    "heal-stuck-events": {
        "task": "webhooks_app.tasks.heal_stuck_events",
        "schedule": 60.0,
        "options": {"queue": Queue.MAINTENANCE.value, "expires": 55.0},
    },
    "dispatch-due-runs": {
        "task": "workflows_app.tasks.dispatch_due_runs",
        "schedule": 2.0,
        "options": {"queue": Queue.MAINTENANCE.value, "expires": 1.5},
    },
    "heal-stuck-runs": {
        "task": "workflows_app.tasks.heal_stuck_runs",
        "schedule": 60.0,
        "options": {"queue": Queue.MAINTENANCE.value, "expires": 55.0},
    },
    "evaluate-alerts": {
        "task": "ops_app.tasks.evaluate_alerts",
        "schedule": 60.0,
        "options": {"queue": Queue.MAINTENANCE.value, "expires": 55.0},
    },
    "purge-expired-data": {
        "task": "ops_app.tasks.purge_expired_data",
        "schedule": 86400.0,
        "options": {"queue": Queue.MAINTENANCE.value, "expires": 82800.0},
    },
    "dispatch-due-deliveries": {
        "task": "webhooks_app.tasks.dispatch_due_deliveries",
        "schedule": 5.0,
        "options": {"queue": Queue.MAINTENANCE.value, "expires": 4.0},
    },
    "disable-failing-endpoints": {
        "task": "webhooks_app.tasks.disable_failing_endpoints",
        "schedule": 3600.0,
        "options": {"queue": Queue.MAINTENANCE.value, "expires": 3000.0},
    },
    "evaluate-diagnostics": {
        "task": "ops_app.tasks.evaluate_diagnostics",
        "schedule": 300.0,
        "options": {"queue": Queue.MAINTENANCE.value, "expires": 290.0},
    },
}
