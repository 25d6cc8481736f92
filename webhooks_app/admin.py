"""Admin pages of webhooks_app's own configuration: organizations, task templates and assignee
rules, and the local tasks the local connector creates. Sources (write-only secrets) are in
admin_sources; the event admin and the acts on events are in the ops room (ops_app.admin_events)."""

from django.contrib import admin

import webhooks_app.admin_sources  # noqa: F401 - registers the source admin
from webhooks_app.admin_base import OrganizationPreselectMixin, ReadOnlyMixin
from webhooks_app.models import AssigneeRule, LocalTask, Organization, TaskTemplate


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin[Organization]):
    list_display = ["name", "slug", "created_at"]
    prepopulated_fields = {"slug": ("name",)}


@admin.register(TaskTemplate)
class TaskTemplateAdmin(OrganizationPreselectMixin, admin.ModelAdmin[TaskTemplate]):
    list_display = ["organization", "trigger_event_type", "stage", "task_number", "title", "assignee_role"]
    list_filter = ["organization", "stage", "assignee_role"]


@admin.register(AssigneeRule)
class AssigneeRuleAdmin(OrganizationPreselectMixin, admin.ModelAdmin[AssigneeRule]):
    list_display = ["organization", "role", "location", "assignee"]
    list_filter = ["organization", "role"]
    search_fields = ["location", "assignee"]


@admin.register(LocalTask)
class LocalTaskAdmin(ReadOnlyMixin, admin.ModelAdmin[LocalTask]):
    list_display = ["created_at", "entity_id", "title", "assignee", "due_at"]
    search_fields = ["=entity_id", "=idempotency_key"]
