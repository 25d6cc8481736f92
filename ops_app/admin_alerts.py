"""Read-only admin lists of alerts on trends (ops_app.alerting): what fired, when, and whether
the start and the recovery went out. Imported by ops_app.admin so the admin site registers it."""

from django.contrib import admin

from ops_app.models import Alert
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
