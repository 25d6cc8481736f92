"""Read-only admin lists of what beat's health jobs found and did: alerts on trends
(ops_app.alerting; what fired, when, whether its start and recovery went out), retention runs
(ops_app.retention; what each deleted) and diagnostics (ops_app.diagnostics; configuration
problems, each with its fix and a link to the page that fixes it). Imported by ops_app.admin so
the admin site registers them."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from ops_app.models import Alert, Diagnostic, RetentionRun
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


class DiagnosticStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Open"), ("resolved", "Resolved")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(Diagnostic)
class DiagnosticAdmin(ReadOnlyMixin, admin.ModelAdmin[Diagnostic]):
    list_display = [
        "first_seen",
        "severity",
        "kind",
        "organization",
        "message",
        "fix",
        "fixing_page",
        "last_seen",
        "resolved_at",
    ]
    list_filter = [DiagnosticStateFilter, "severity", "kind", "organization"]
    list_select_related = ["organization"]
    search_fields = ["message", "subject"]
    list_per_page = 50
    show_full_result_count = False

    @admin.display(description="fix it at")
    def fixing_page(self, obj: Diagnostic) -> str:
        if not obj.link:
            return "—"
        return format_html('<a href="{}">open the page</a>', obj.link)
