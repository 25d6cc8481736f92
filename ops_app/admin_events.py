"""The event admin. Events and their ledger are read-only: people act on events only through the
act flow (ops_app.acts), from the event's page or in bulk from the list, each after a
confirmation that says what will happen to which events and items."""

import json
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.contenttypes.admin import GenericTabularInline
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html

from ops_app.acts import Act, acts_for
from ops_app.admin_act_flow import ActAdminMixin
from ops_app.admin_lists import (
    ErrorCodeFilter,
    EstimatedCountPaginator,
    EventTypeFilter,
    ReceivedFilter,
    StatusGroupFilter,
)
from ops_app.event_pages import IN_FLIGHT, cause_hints, failure_rows, ledger_counts
from ops_app.models import AuditAct, AuditEntry
from webhooks_app.admin_base import ReadOnlyMixin
from webhooks_app.models import EventItem, EventStatus, ProcessingAttempt, WebhookEvent


class EventItemInline(ReadOnlyMixin, admin.TabularInline[EventItem, WebhookEvent]):
    model = EventItem
    verbose_name_plural = "Item ledger"
    fields = readonly_fields = (
        "number",
        "title",
        "status",
        "assignee",
        "downstream_id",
        "error_code",
        "error",
        "failure_kind",
        "attempts",
    )
    extra = 0


class ProcessingAttemptInline(ReadOnlyMixin, admin.TabularInline[ProcessingAttempt, WebhookEvent]):
    model = ProcessingAttempt
    verbose_name_plural = "Processing attempts"
    fields = readonly_fields = (
        "number",
        "outcome",
        "started_at",
        "duration_ms",
        "worker",
        "error_code",
        "error",
    )
    extra = 0


class AuditHistoryInline(ReadOnlyMixin, GenericTabularInline):
    model = AuditEntry
    ct_field = "target_type"
    ct_fk_field = "target_id"
    verbose_name_plural = "History: what people did"
    fields = readonly_fields = ("created_at", "actor_label", "via", "act", "status_before", "status_after", "note")
    extra = 0


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyMixin, ActAdminMixin):
    change_list_template = "admin/webhooks_app/webhookevent/change_list.html"
    change_form_template = "admin/webhooks_app/webhookevent/change_form.html"
    list_display = [
        "received",
        "source",
        "event_type",
        "entity_id",
        "status_badge",
        "action",
        "tasks",
        "attempts",
        "last_error_code",
    ]
    list_filter = [StatusGroupFilter, "status", "action", "source", EventTypeFilter, ErrorCodeFilter, ReceivedFilter]
    search_fields = ["=idempotency_key", "=entity_id", "last_error"]
    search_help_text = "Exact idempotency key or entity id, or words of the last error."
    list_select_related = ["source"]
    list_per_page = 50
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    # Facet counts are one COUNT per filter choice over the whole table.
    show_facets = admin.ShowFacets.NEVER
    acts = acts_for(WebhookEvent)
    act_confirmation_template = "admin/webhooks_app/webhookevent/act_confirmation.html"
    act_ordering = ("-received_at",)
    inlines = [EventItemInline, ProcessingAttemptInline, AuditHistoryInline]
    # Status, counts and failure details head the page (change_form.html); these are the rest.
    fieldsets = [
        (
            "Outcome",
            {"fields": [("status", "success", "action"), ("tasks_created", "tasks_failed", "last_error_code")]},
        ),
        (
            "Event",
            {
                "fields": [
                    "id",
                    ("organization", "source"),
                    ("event_type", "entity_id"),
                    "idempotency_key",
                    "received_at",
                ]
            },
        ),
        (
            "Attempts",
            {
                "fields": [
                    ("attempts", "round_attempts", "max_attempts", "recoverable_rounds"),
                    ("last_attempt_at", "next_retry_at", "completed_at"),
                    "last_error",
                ]
            },
        ),
    ]
    readonly_fields = [
        "id",
        "organization",
        "source",
        "event_type",
        "entity_id",
        "idempotency_key",
        "status",
        "success",
        "action",
        "tasks_created",
        "tasks_failed",
        "attempts",
        "round_attempts",
        "max_attempts",
        "recoverable_rounds",
        "last_attempt_at",
        "next_retry_at",
        "completed_at",
        "last_error_code",
        "last_error",
        "received_at",
    ]

    @admin.display(description="received", ordering="received_at")
    def received(self, obj: WebhookEvent) -> str:
        return date_format(timezone.localtime(obj.received_at), "M j, H:i")

    @admin.display(description="tasks created / failed", ordering="tasks_failed")
    def tasks(self, obj: WebhookEvent) -> str:
        if not obj.tasks_failed:
            return format_html("{} / 0", obj.tasks_created)
        return format_html('{} / <strong class="mh-no">{}</strong>', obj.tasks_created, obj.tasks_failed)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: WebhookEvent) -> str:
        return format_html('<span class="mh-badge mh-{}">{}</span>', obj.status, obj.get_status_display())

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        event = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if event is not None:
            context.update(self._event_page_context(request, event))
        return super().change_view(request, object_id, form_url, context)

    def _event_page_context(self, request: HttpRequest, event: WebhookEvent) -> dict[str, Any]:
        items = list(event.items.order_by("number"))
        context = self.act_panel_context(request, event)
        plans, may = context["act_plans"], context["may_act"]
        return {
            **context,
            "failure_rows": failure_rows(event, items),
            "cause_hints": cause_hints(event, items),
            "retry_plan": plans["retry_failed_items"],
            "resolve_plan": plans["mark_resolved"],
            "may_retry": may["retry_failed_items"],
            "may_resolve": may["mark_resolved"],
            "ledger": ledger_counts(items),
            "in_flight": event.status in IN_FLIGHT,
            "resolution": AuditEntry.objects.for_target(event).filter(act=AuditAct.MARK_RESOLVED).first()
            if event.status == EventStatus.MANUALLY_RESOLVED
            else None,
            "payload_pretty": json.dumps(event.payload, indent=2, sort_keys=True),
            "headers_pretty": json.dumps(event.headers, indent=2, sort_keys=True),
        }

    def act_done_message(self, act: Act, target: Any) -> str:
        # The page the user lands on must say what is true now: a retry only queued the event.
        if act.name in (AuditAct.RETRY_FAILED_ITEMS, AuditAct.REQUEUE_DEAD_LETTERS):
            return f"{act.title}: queued. The event shows Queued or Processing until a worker has run the failed items."
        return f"{act.title}: done."
