"""Admin for error records (read-only, resolved and reopened through ops_app.error_acts, audited),
and the admin home, which is the ops dashboard (ops_app.dashboard)."""

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html

import ops_app.admin_api_keys
import ops_app.admin_events  # noqa: F401 - registers the event admin
from ops_app.error_acts import ErrorRecordStateError, error_record_reopen, error_record_resolve
from ops_app.models import ErrorRecord, ErrorRecordAction
from webhooks_app.admin_base import ReadOnlyMixin

admin.site.site_header = "mendhook operations"
admin.site.site_title = "mendhook"
admin.site.index_title = "Operations dashboard"
# The admin home shows what needs a human now before the list of models.
admin.site.index_template = "admin/ops_index.html"
# Pages are wide tables (events, ledgers); the dashboard and breadcrumbs do the navigating.
admin.site.enable_nav_sidebar = False

MAX_BULK_RECORDS = 200


class ErrorRecordActionInline(ReadOnlyMixin, admin.TabularInline[ErrorRecordAction, ErrorRecord]):
    model = ErrorRecordAction
    verbose_name_plural = "History: resolved, reopened, recurred"
    fields = readonly_fields = ("created_at", "actor_label", "kind", "note")
    extra = 0


@admin.register(ErrorRecord)
class ErrorRecordAdmin(ReadOnlyMixin, admin.ModelAdmin[ErrorRecord]):
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
    actions = ["resolve_selected", "reopen_selected"]
    inlines = [ErrorRecordActionInline]
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

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("ops_app.resolve_errorrecord")

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

    # --- acts: bulk from the list, or from the record's page; both confirm, both audit

    @admin.action(description="Resolve selected error groups…", permissions=["resolve"])
    def resolve_selected(self, request: HttpRequest, queryset: QuerySet[ErrorRecord]) -> HttpResponse | None:
        return self._act(request, queryset, "resolve", bulk=True)

    @admin.action(description="Reopen selected error groups…", permissions=["resolve"])
    def reopen_selected(self, request: HttpRequest, queryset: QuerySet[ErrorRecord]) -> HttpResponse | None:
        return self._act(request, queryset, "reopen", bulk=True)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # A posted act without the permission is refused, not silently dropped as Django does.
        posted = set(request.POST.getlist("action")) if request.method == "POST" else set()
        if posted & set(self.actions or []) and not self.has_resolve_permission(request):
            raise PermissionDenied
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.act_view)
        return [path("<path:object_id>/act/<str:kind>/", view, name="ops_app_errorrecord_act"), *super().get_urls()]

    def act_view(self, request: HttpRequest, object_id: str, kind: str) -> HttpResponse:
        if kind not in ("resolve", "reopen"):
            raise Http404("no such act")
        if not self.has_resolve_permission(request):
            raise PermissionDenied
        record = self.get_object(request, unquote(object_id))
        if record is None:
            raise Http404("no such error record")
        response = self._act(request, ErrorRecord.objects.filter(pk=record.pk), kind, bulk=False)
        return response or HttpResponseRedirect(reverse("admin:ops_app_errorrecord_change", args=[record.pk]))

    def _act(
        self, request: HttpRequest, queryset: QuerySet[ErrorRecord], kind: str, *, bulk: bool
    ) -> HttpResponse | None:
        records = list(queryset.order_by("-last_seen_at")[: MAX_BULK_RECORDS + 1])
        if len(records) > MAX_BULK_RECORDS:
            self.message_user(request, f"Select at most {MAX_BULK_RECORDS} error groups at once.", messages.ERROR)
            return None
        wanted_resolved = kind == "reopen"  # the state a record must be in for the act to apply
        applies = [r for r in records if r.resolved == wanted_resolved]
        note = request.POST.get("note", "").strip()
        error = ""
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            if kind == "resolve" and not note:
                error = "A note is required: say what fixed it."
            else:
                self._run(request, kind, applies, note)
                return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Resolve error groups?" if kind == "resolve" else "Reopen error groups?",
            "kind": kind,
            "records": records,
            "applies": applies,
            "note": note,
            "error": error,
            "bulk": bulk,
            "action_name": f"{kind}_selected",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "back_url": request.get_full_path()
            if bulk
            else reverse("admin:ops_app_errorrecord_change", args=[records[0].pk]),
        }
        return TemplateResponse(request, "admin/ops_app/errorrecord/act_confirmation.html", context)

    def _run(self, request: HttpRequest, kind: str, records: list[ErrorRecord], note: str) -> None:
        done, refused = 0, []
        for record in records:
            try:
                if kind == "resolve":
                    error_record_resolve(record_id=record.pk, user=request.user, note=note)
                else:
                    error_record_reopen(record_id=record.pk, user=request.user, note=note)
            except ErrorRecordStateError as exc:
                refused.append(f"#{record.pk}: {exc}")
            else:
                done += 1
        verb = "Resolved" if kind == "resolve" else "Reopened"
        if done:
            self.message_user(request, f"{verb} {done} error group(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not done: " + "; ".join(refused), messages.WARNING)
        if not done and not refused:
            self.message_user(request, "None of the selected error groups applies.", messages.WARNING)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {**(extra_context or {}), "may_resolve": self.has_resolve_permission(request)}
        return super().change_view(request, object_id, form_url, context)


@admin.register(ErrorRecordAction)
class ErrorRecordActionAdmin(ReadOnlyMixin, admin.ModelAdmin[ErrorRecordAction]):
    """The audit of error records across all groups: who resolved or reopened what."""

    list_display = ["created_at", "actor_label", "kind", "record", "note"]
    list_filter = ["kind"]
    list_select_related = ["record"]
    search_fields = ["actor_label", "note"]
    fields = readonly_fields = ("created_at", "actor_label", "kind", "record", "note")
