"""Admin pages for API keys (made here, shown once, revocable) and replays (read-only).

Imported by ops_app.admin so the admin site registers them.
"""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import reverse
from django.utils import timezone

from ops_app.models import ApiKey, Replay
from webhooks_app.admin_base import OrganizationPreselectMixin

RAW_KEY_ATTR = "_raw_key_to_show_once"

# Inline so the page that shows a secret lives next to the code that makes it.
KEY_CREATED_TEMPLATE = """{% extends "admin/base_site.html" %}
{% block content %}
<h1>API key created: {{ key.name }}</h1>
<p>Organization: <strong>{{ key.organization }}</strong>. Copy the key now: only its hash is stored,
so it cannot be shown again. Send it as <code>Authorization: Bearer &lt;key&gt;</code>.</p>
<p><input id="api-key" type="text" readonly size="80" value="{{ raw_key }}" onfocus="this.select()"
  style="font-family: monospace; font-size: 1.1em"></p>
<p><a href="{{ changelist_url }}">Back to API keys</a></p>
{% endblock %}"""


@admin.register(ApiKey)
class ApiKeyAdmin(OrganizationPreselectMixin, admin.ModelAdmin[ApiKey]):
    list_display = ["name", "organization", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["organization", ("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["organization"]
    search_fields = ["=prefix", "name"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("organization", "name")
        return ("name", "organization", "prefix", "created_by", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return ("organization", "prefix", "created_by", "created_at", "last_used_at", "revoked_at")

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        # Revoke instead: the row keeps naming the key in audit records and replays.
        return False

    def save_model(self, request: HttpRequest, obj: ApiKey, form: ModelForm[ApiKey], change: bool) -> None:
        if not change:
            setattr(obj, RAW_KEY_ATTR, obj.set_new_key())
            obj.created_by_id = request.user.pk
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        raw_key = getattr(obj, RAW_KEY_ATTR, None)
        if raw_key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "key": obj,
            "raw_key": raw_key,
            "changelist_url": reverse("admin:ops_app_apikey_changelist"),
        }
        response = HttpResponse(engines["django"].from_string(KEY_CREATED_TEMPLATE).render(context, request))
        # The page holds a secret: no browser or proxy may keep a copy.
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)


@admin.register(Replay)
class ReplayAdmin(admin.ModelAdmin[Replay]):
    list_display = ["created_at", "organization", "status", "matched_events", "done", "failed", "requested_by"]
    list_filter = ["status", "organization"]
    list_select_related = ["organization"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # replays are started over the API, where the filter is validated

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
