"""Admin for error records (read-only; resolved and reopened through the act flow, audited), the
audit of every act, and the admin home, which is the ops dashboard (ops_app.dashboard)."""

import json
from typing import Any

from django.contrib import admin
from django.contrib.contenttypes.admin import GenericTabularInline
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html

# Imported for what they register with the admin site: API keys and replays, events, runs and
# calls, alerts and retention runs.
import ops_app.admin_alerts
import ops_app.admin_api_keys
import ops_app.admin_events
import ops_app.admin_outbound
import ops_app.admin_workflows  # noqa: F401
from ops_app.acts import acts_for
from ops_app.admin_act_flow import ActAdminMixin
from ops_app.models import AuditEntry, Breaker, ErrorRecord
from webhooks_app.admin_base import ReadOnlyMixin
from webhooks_app.breakers import BreakerState, breaker_states

admin.site.site_header = "mendhook operations"
admin.site.site_title = "mendhook"
admin.site.index_title = "Operations dashboard"
# The admin home shows what needs a human now before the list of models.
admin.site.index_template = "admin/ops_index.html"
# Pages are wide tables (events, ledgers); the dashboard and breadcrumbs do the navigating.
admin.site.enable_nav_sidebar = False


class ErrorRecordHistoryInline(ReadOnlyMixin, GenericTabularInline):
    model = AuditEntry
    ct_field = "target_type"
    ct_fk_field = "target_id"
    verbose_name_plural = "History: resolved, reopened, recurred"
    fields = readonly_fields = ("created_at", "actor_label", "via", "act", "note")
    extra = 0


@admin.register(ErrorRecord)
class ErrorRecordAdmin(ReadOnlyMixin, ActAdminMixin):
    change_form_template = "admin/ops_app/errorrecord/change_form.html"
    change_list_template = "admin/ops_app/errorrecord/change_list.html"
    list_display = [
        "last_seen",
        "severity_badge",
        "function",
        "error_code",
        "short_message",
        "occurrences",
        "first_seen",
        "resolved",
    ]
    list_display_links = ["last_seen", "short_message"]
    list_filter = ["resolved", "severity", "error_code", "function"]
    search_fields = ["message", "function", "error_code"]
    list_per_page = 50
    show_full_result_count = False
    acts = acts_for(ErrorRecord)
    act_confirmation_template = "admin/ops_app/errorrecord/act_confirmation.html"
    act_ordering = ("-last_seen_at",)
    inlines = [ErrorRecordHistoryInline]
    fieldsets = [
        (None, {"fields": [("severity", "occurrences"), ("first_seen_at", "last_seen_at"), "resolution"]}),
        ("Where", {"fields": [("function", "action"), ("error_code", "logger")]}),
        ("Context of the latest occurrence", {"fields": [("organization_id", "event_link"), "other_context"]}),
        ("What happened", {"fields": ["message", "pretty_stack", "pretty_payload"]}),
    ]
    readonly_fields = [
        "severity",
        "occurrences",
        "first_seen_at",
        "last_seen_at",
        "resolution",
        "function",
        "action",
        "error_code",
        "logger",
        "organization_id",
        "event_link",
        "other_context",
        "message",
        "pretty_stack",
        "pretty_payload",
    ]

    @admin.display(description="last seen", ordering="last_seen_at")
    def last_seen(self, obj: ErrorRecord) -> str:
        return date_format(timezone.localtime(obj.last_seen_at), "M j, H:i")

    @admin.display(description="first seen", ordering="first_seen_at")
    def first_seen(self, obj: ErrorRecord) -> str:
        return date_format(timezone.localtime(obj.first_seen_at), "M j, H:i")

    @admin.display(description="severity", ordering="severity")
    def severity_badge(self, obj: ErrorRecord) -> str:
        return format_html('<span class="mh-badge mh-{}">{}</span>', obj.severity, obj.get_severity_display())

    @admin.display(description="message")
    def short_message(self, obj: ErrorRecord) -> str:
        return obj.message if len(obj.message) <= 100 else obj.message[:99] + "…"

    @admin.display(description="resolution")
    def resolution(self, obj: ErrorRecord) -> str:
        if not obj.resolved:
            return "Open"
        who = obj.resolved_by.get_username() if obj.resolved_by else "someone"
        when = f"{obj.resolved_at:%b %-d, %Y %H:%M}" if obj.resolved_at else ""
        return f"Resolved by {who} {when}: {obj.resolution_note}"

    @admin.display(description="event")
    def event_link(self, obj: ErrorRecord) -> str:
        if obj.event_id is None:
            return "—"
        url = reverse("admin:webhooks_app_webhookevent_change", args=[obj.event_id])
        return format_html('<a href="{}">{}</a>', url, obj.event_id)

    @admin.display(description="other ids")
    def other_context(self, obj: ErrorRecord) -> str:
        pairs = [
            ("workflow run", obj.workflow_run_id),
            ("lead", obj.lead_id),
            ("campaign", obj.campaign_id),
        ]
        return ", ".join(f"{label} {value}" for label, value in pairs if value) or "—"

    @admin.display(description="stack")
    def pretty_stack(self, obj: ErrorRecord) -> str:
        return format_html('<pre class="mh-pre">{}</pre>', obj.stack) if obj.stack else "—"

    @admin.display(description="request payload")
    def pretty_payload(self, obj: ErrorRecord) -> str:
        if obj.request_payload is None:
            return "—"
        return format_html('<pre class="mh-pre">{}</pre>', json.dumps(obj.request_payload, indent=2, sort_keys=True))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {**(extra_context or {}), "may_resolve": request.user.has_perm("ops_app.resolve_errorrecord")}
        return super().change_view(request, object_id, form_url, context)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyMixin, admin.ModelAdmin[AuditEntry]):
    """Everything people (and the system) did, across events and error groups: who did what to
    which object, through which door, and why."""

    list_display = ["created_at", "actor_label", "via", "act", "target_link", "status_before", "status_after", "note"]
    list_filter = ["act", "via", "target_type"]
    search_fields = ["actor_label", "note", "=target_id"]
    list_select_related = ["target_type"]
    show_full_result_count = False

    @admin.display(description="on")
    def target_link(self, obj: AuditEntry) -> str:
        label = f"{obj.target_type.name} {obj.target_id}"
        try:
            url = reverse(f"admin:{obj.target_type.app_label}_{obj.target_type.model}_change", args=[obj.target_id])
        except NoReverseMatch:  # a target kind without an admin page of its own
            return label
        return format_html('<a href="{}">{}</a>', url, label)


@admin.register(Breaker)
class BreakerAdmin(ReadOnlyMixin, ActAdminMixin):
    """Circuit breakers with their live state (Redis) and the audited reset act."""

    list_display = ["name", "state", "failures", "opened_at"]
    search_fields = ["name"]
    acts = acts_for(Breaker)
    act_confirmation_template = "admin/ops_app/breaker/act_confirmation.html"
    act_ordering = ("name",)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # Rows appear for breakers the connectors have used since the last look.
        self._states = {s.name: s for s in breaker_states()}
        Breaker.objects.sync(self._states)
        return super().changelist_view(request, extra_context)

    def _state(self, obj: Breaker) -> BreakerState | None:
        states = getattr(self, "_states", None)
        if states is None:
            states = self._states = {s.name: s for s in breaker_states()}
        return states.get(obj.name)

    @admin.display(description="state")
    def state(self, obj: Breaker) -> str:
        state = self._state(obj)
        return state.state if state else "unused"

    @admin.display(description="failures")
    def failures(self, obj: Breaker) -> int:
        state = self._state(obj)
        return state.failures if state else 0

    @admin.display(description="opened at")
    def opened_at(self, obj: Breaker) -> str:
        state = self._state(obj)
        if state is None or state.opened_at is None:
            return "—"
        return date_format(timezone.localtime(state.opened_at), "M j, H:i:s")
