"""Read-only admin lists of what beat's health jobs found and did: alerts on trends
(ops_app.alerting; what fired, when, whether its start and recovery went out) and retention runs
(ops_app.retention; what each deleted). Imported by ops_app.admin so the admin site registers them."""

from django.contrib import admin

from ops_app.models import Alert, RetentionRun
from webhooks_app.admin_base import ReadOnlyMixin


@admin.register(Alert)
class AlertAdmin(ReadOnlyMixin, admin.ModelAdmin[Alert]):
    list_display = [
        "started_at",
        "state",
        "condition",
        "organization",
        "subject",
        "message",
        "last_value",
        "threshold",
        "ended_at",
        "notified_start_at",
        "notified_end_at",
    ]
    list_filter = ["state", "condition", "organization"]
    list_select_related = ["organization"]
    search_fields = ["message", "subject"]
    list_per_page = 50
    show_full_result_count = False


@admin.register(RetentionRun)
class RetentionRunAdmin(ReadOnlyMixin, admin.ModelAdmin[RetentionRun]):
    list_display = [
        "started_at",
        "finished_at",
        "events_deleted",
        "items_deleted",
        "attempts_deleted",
        "step_executions_deleted",
        "error_records_deleted",
        "audit_entries_deleted",
        "batches",
    ]
    list_per_page = 50
