"""The event admin. Events and their ledger are read-only: people act on events only through the
audited operations (webhooks_app.services.operations), from the event's page or in bulk from
the list, each after a confirmation that says what will happen to which events and items."""

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

from ops_app.admin_acts import ACTS, Act, EventPlan, failure_rows, plans_for
from ops_app.admin_lists import ErrorCodeFilter, EstimatedCountPaginator, EventTypeFilter, ReceivedFilter
from webhooks_app.admin_base import ReadOnlyMixin
from webhooks_app.models import (
    EventItem,
    EventStatus,
    OperatorAction,
    OperatorActionKind,
    ProcessingAttempt,
    WebhookEvent,
)
from webhooks_app.services.operations import (
    Actor,
    OperationError,
)

# A bulk act lists every event and item on its confirmation page; more than this is a filter
# that should be narrowed first.
MAX_BULK_EVENTS = 200


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


class OperatorActionInline(ReadOnlyMixin, admin.TabularInline[OperatorAction, WebhookEvent]):
    model = OperatorAction
    verbose_name_plural = "History: what people did"
    fields = readonly_fields = ("created_at", "actor_label", "via", "kind", "status_before", "note")
    extra = 0


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyMixin, admin.ModelAdmin[WebhookEvent]):
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
    list_filter = ["status", "action", "source", EventTypeFilter, ErrorCodeFilter, ReceivedFilter]
    search_fields = ["=idempotency_key", "=entity_id", "last_error"]
    search_help_text = "Exact idempotency key or entity id, or words of the last error."
    list_select_related = ["source"]
    list_per_page = 50
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    # Facet counts are one COUNT per filter choice over the whole table.
    show_facets = admin.ShowFacets.NEVER
    actions = ["retry_failed_items", "requeue_dead_letters", "mark_resolved"]
    inlines = [EventItemInline, ProcessingAttemptInline, OperatorActionInline]
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

    # --- permissions of the acts (admin.action(permissions=[...]) calls has_<name>_permission)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks_app.retry_event")

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks_app.resolve_event")

    def _may(self, request: HttpRequest, act: Act) -> bool:
        return request.user.has_perm(f"webhooks_app.{act.permission}")

    # --- bulk acts from the list

    @admin.action(description="Retry failed items now…", permissions=["retry"])
    def retry_failed_items(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> HttpResponse | None:
        return self._bulk(request, queryset, ACTS["retry_failed_items"])

    @admin.action(description="Requeue dead letters…", permissions=["retry"])
    def requeue_dead_letters(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> HttpResponse | None:
        return self._bulk(request, queryset, ACTS["requeue_dead_letters"])

    @admin.action(description="Mark manually resolved…", permissions=["resolve"])
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> HttpResponse | None:
        return self._bulk(request, queryset, ACTS["mark_resolved"])

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # Django drops an action the user may not run and answers 200 "no action selected";
        # a posted act without its permission is refused outright instead.
        if request.method == "POST":
            for name in request.POST.getlist("action"):
                if name in ACTS and not self._may(request, ACTS[name]):
                    raise PermissionDenied
        return super().changelist_view(request, extra_context)

    def _bulk(self, request: HttpRequest, queryset: QuerySet[WebhookEvent], act: Act) -> HttpResponse | None:
        events = list(queryset.select_related("source").order_by("-received_at")[: MAX_BULK_EVENTS + 1])
        if len(events) > MAX_BULK_EVENTS:
            self.message_user(
                request, f"Select at most {MAX_BULK_EVENTS} events at once; narrow the filter first.", messages.ERROR
            )
            return None
        plans = plans_for(act, events)
        note = request.POST.get("note", "").strip()
        error = ""
        if request.POST.get("confirm") == "yes":
            if act.needs_note and not note:
                error = "A note is required: say what you did about these events."
            else:
                self._run(request, act, [p for p in plans if p.applies], note)
                return None
        return self._confirmation(request, act, plans, note=note, error=error, bulk=True)

    def _run(self, request: HttpRequest, act: Act, plans: list[EventPlan], note: str) -> None:
        actor = Actor.from_user(request.user, via="admin")
        done, refused = 0, []
        for plan in plans:
            try:
                act.run(event_id=plan.event.pk, actor=actor, note=note)
            except OperationError as exc:  # the event changed since the confirmation page
                refused.append(f"{plan.event.pk}: {exc}")
            else:
                done += 1
        if done:
            self.message_user(request, f"{act.title}: done for {done} event(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not done: " + "; ".join(refused), messages.WARNING)
        if not done and not refused:
            self.message_user(request, f"{act.title}: none of the selected events applies.", messages.WARNING)

    def _confirmation(
        self, request: HttpRequest, act: Act, plans: list[EventPlan], *, note: str, error: str, bulk: bool
    ) -> TemplateResponse:
        applies = [p for p in plans if p.applies]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{act.title}?",
            "act": act,
            "plans": plans,
            "applies_count": len(applies),
            "open_items_count": sum(len(p.open_items) for p in applies),
            "kept_items_count": sum(p.kept_items for p in applies),
            "note": note,
            "error": error,
            "bulk": bulk,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "back_url": request.get_full_path()
            if bulk
            else reverse("admin:webhooks_app_webhookevent_change", args=[plans[0].event.pk]),
        }
        return TemplateResponse(request, "admin/webhooks_app/webhookevent/act_confirmation.html", context)

    # --- acts on one event (buttons on its page)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.act_view)
        act_url = path("<path:object_id>/act/<str:act_name>/", view, name="webhooks_app_webhookevent_act")
        return [act_url, *super().get_urls()]

    def act_view(self, request: HttpRequest, object_id: str, act_name: str) -> HttpResponse:
        act = ACTS.get(act_name)
        if act is None:
            raise Http404("no such act")
        if not self._may(request, act):
            raise PermissionDenied
        event = self.get_object(request, unquote(object_id))
        if event is None or not self.has_view_permission(request, event):
            raise Http404("no such event")
        note = request.POST.get("note", "").strip()
        error = ""
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            if act.needs_note and not note:
                error = "A note is required: say what you did about this event."
            else:
                try:
                    act.run(event_id=event.pk, actor=Actor.from_user(request.user, via="admin"), note=note)
                except OperationError as exc:
                    self.message_user(request, f"{act.title}: {exc}", messages.ERROR)
                else:
                    self.message_user(request, f"{act.title}: done.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:webhooks_app_webhookevent_change", args=[event.pk]))
        return self._confirmation(request, act, plans_for(act, [event]), note=note, error=error, bulk=False)

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
        retry = ACTS["retry_failed_items"]
        resolve = ACTS["mark_resolved"]
        return {
            "failure_rows": failure_rows(event, items),
            "retry_plan": retry.plan(event, items),
            "resolve_plan": resolve.plan(event, items),
            "may_retry": self._may(request, retry),
            "may_resolve": self._may(request, resolve),
            "resolution": event.operator_actions.filter(kind=OperatorActionKind.RESOLVE).first()
            if event.status == EventStatus.MANUALLY_RESOLVED
            else None,
            "payload_pretty": json.dumps(event.payload, indent=2, sort_keys=True),
            "headers_pretty": json.dumps(event.headers, indent=2, sort_keys=True),
        }


@admin.register(OperatorAction)
class OperatorActionAdmin(ReadOnlyMixin, admin.ModelAdmin[OperatorAction]):
    """Everything people did to events, across events: who retried or resolved what, and why."""

    list_display = ["created_at", "actor_label", "via", "kind", "event_link", "status_before", "note"]
    list_filter = ["kind", "via"]
    search_fields = ["actor_label", "note"]
    list_select_related = ["event"]
    show_full_result_count = False

    @admin.display(description="event")
    def event_link(self, obj: OperatorAction) -> str:
        url = reverse("admin:webhooks_app_webhookevent_change", args=[obj.event_id])
        return format_html('<a href="{}">{}</a>', url, obj.event)
