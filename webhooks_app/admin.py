"""Admin pages. Events and their ledger are read-only here: people act on them through the
explicit actions of the ops workflow, never by editing rows."""

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from webhooks_app.models import (
    AssigneeRule,
    EventItem,
    LocalTask,
    Organization,
    ProcessingAttempt,
    Source,
    TaskTemplate,
    WebhookEvent,
)


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EventItemInline(ReadOnlyMixin, admin.TabularInline[EventItem, WebhookEvent]):
    model = EventItem
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
    fields = readonly_fields = (
        "number",
        "outcome",
        "started_at",
        "duration_ms",
        "worker",
        "task_id",
        "error_code",
        "error",
    )
    extra = 0


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyMixin, admin.ModelAdmin[WebhookEvent]):
    list_display = [
        "received_at",
        "source",
        "event_type",
        "entity_id",
        "status",
        "action",
        "tasks_created",
        "tasks_failed",
        "attempts",
        "last_error_code",
    ]
    list_filter = ["status", "action", "source", "event_type", "received_at"]
    search_fields = ["=idempotency_key", "=entity_id", "last_error"]
    list_select_related = ["source"]
    date_hierarchy = "received_at"
    inlines = [EventItemInline, ProcessingAttemptInline]
    fields = readonly_fields = (
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
        "max_attempts",
        "recoverable_rounds",
        "last_attempt_at",
        "next_retry_at",
        "completed_at",
        "last_error_code",
        "last_error",
        "pretty_failure_details",
        "pretty_payload",
        "pretty_headers",
        "received_at",
    )

    @admin.display(description="failure details")
    def pretty_failure_details(self, obj: WebhookEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.failure_details, indent=2))

    @admin.display(description="payload")
    def pretty_payload(self, obj: WebhookEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True))

    @admin.display(description="verified headers")
    def pretty_headers(self, obj: WebhookEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.headers, indent=2, sort_keys=True))


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin[Organization]):
    list_display = ["name", "slug", "created_at"]
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin[Source]):
    list_display = ["slug", "organization", "kind", "signing_scheme", "connector", "enabled"]
    list_filter = ["kind", "enabled", "connector"]


@admin.register(TaskTemplate)
class TaskTemplateAdmin(admin.ModelAdmin[TaskTemplate]):
    list_display = ["organization", "trigger_event_type", "stage", "task_number", "title", "assignee_role"]
    list_filter = ["organization", "stage", "assignee_role"]


@admin.register(AssigneeRule)
class AssigneeRuleAdmin(admin.ModelAdmin[AssigneeRule]):
    list_display = ["organization", "role", "location", "assignee"]
    list_filter = ["organization", "role"]


@admin.register(LocalTask)
class LocalTaskAdmin(ReadOnlyMixin, admin.ModelAdmin[LocalTask]):
    list_display = ["created_at", "entity_id", "title", "assignee", "due_at"]
    search_fields = ["=entity_id", "=idempotency_key"]
