"""Admin of outbound notifications: endpoints (the signing secret shown once, on add and on
rotation; custom header values write-only), messages, deliveries with every attempt, and the
acts (retry, recover, enable, disable) through the shared act flow, audited."""

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from ops_app.acts import acts_for
from ops_app.admin_act_flow import ActAdminMixin
from ops_app.outbound_stats import endpoint_health
from webhooks_app.admin_base import OrganizationPreselectMixin, ReadOnlyMixin
from webhooks_app.models import Delivery, DeliveryAttempt, Endpoint, OutboundMessage
from webhooks_app.services.outbound.operations import endpoint_secret_rotate

NEW_SECRET_ATTR = "_secret_to_show_once"  # noqa: S105 - an attribute name
ACT_TEMPLATE = "admin/ops_app/outbound/act_confirmation.html"

ONCE_PAGE = """{% extends "admin/base_site.html" %}
{% block content %}
<h1>{{ title }}</h1>
<p>Copy the signing secret now: it is stored encrypted and will not be shown again.
{% if rotated %}Requests keep a signature by the previous secret for the grace period,
so the receiver can switch.{% endif %}</p>
<p><input class="signing-secret" type="text" readonly size="70" value="{{ secret }}" onfocus="this.select()"
  style="font-family: monospace"></p>
<p><a href="{{ back_url }}">Back</a></p>
{% endblock %}"""


class EndpointForm(ModelForm[Endpoint]):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    new_headers = forms.JSONField(
        label="Custom headers",
        required=False,
        help_text='Write-only: an object like {"X-Team": "ops"} replaces the current headers; empty keeps them.',
    )

    class Meta:
        model = Endpoint
        fields = ["organization", "url", "description", "event_types", "max_per_second", "retry_schedule"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("new_headers") not in (None, ""):
            self.instance.headers = data["new_headers"]
        return data


def _secret_page(request: HttpRequest, *, title: str, secret: str, back_url: str, rotated: bool) -> HttpResponse:
    context = {**admin.site.each_context(request), "title": title, "secret": secret, "back_url": back_url}
    context["rotated"] = rotated
    response = HttpResponse(engines["django"].from_string(ONCE_PAGE).render(context, request))
    response["Cache-Control"] = "no-store"  # the page holds a secret
    return response


@admin.register(Endpoint)
class EndpointAdmin(OrganizationPreselectMixin, ActAdminMixin):
    form = EndpointForm
    list_display = ["url", "organization", "enabled", "disabled_reason", "failing_since", "subscribed"]
    list_filter = ["enabled", "disabled_reason"]
    list_select_related = ["organization"]
    search_fields = ["url", "description"]
    readonly_fields = ["secret_hints", "header_names", "state", "health"]
    acts = acts_for(Endpoint)
    act_confirmation_template = ACT_TEMPLATE
    actions = ["rotate_secret"]

    def get_fieldsets(self, request: HttpRequest, obj: Endpoint | None = None) -> Any:
        main = ["organization", "url", "description", "event_types", "max_per_second", "retry_schedule", "new_headers"]
        if obj is None:
            return [(None, {"fields": main})]
        return [
            (None, {"fields": main}),
            ("State", {"fields": ["state", "secret_hints", "header_names"]}),
            ("Health, last 7 days", {"fields": ["health"]}),
        ]

    @admin.display(description="event types")
    def subscribed(self, obj: Endpoint) -> str:
        return ", ".join(obj.event_types or [])

    @admin.display(description="signing secrets")
    def secret_hints(self, obj: Endpoint) -> str:
        return ", ".join(entry.hint for entry in obj.signing_secret_list) or "none: rotate to make one"

    @admin.display(description="custom header names")
    def header_names(self, obj: Endpoint) -> str:
        return ", ".join(sorted(obj.headers or {})) or "—"

    @admin.display(description="state")
    def state(self, obj: Endpoint) -> str:
        if obj.enabled:
            return f"enabled; failing since {obj.failing_since:%Y-%m-%d %H:%M}" if obj.failing_since else "enabled"
        return (
            f"disabled ({obj.get_disabled_reason_display()}) at {obj.disabled_at:%Y-%m-%d %H:%M}: {obj.disabled_note}"
        )

    @admin.display(description="health")
    def health(self, obj: Endpoint) -> SafeString:
        rows = []
        for h in endpoint_health(endpoint=obj).by_event_type:
            rate = f"{h.success_rate * 100:.1f}%" if h.success_rate is not None else "—"
            p50 = f"{h.latency_p50_ms:.0f}" if h.latency_p50_ms is not None else "—"
            p99 = f"{h.latency_p99_ms:.0f}" if h.latency_p99_ms is not None else "—"
            errors = "; ".join(f"{e.status_code or e.error_code} x{e.count}" for e in h.errors) or "—"
            rows.append((h.event_type, h.total, rate, p50, p99, errors))
        if not rows:
            return mark_safe("no deliveries yet")
        header = mark_safe(
            "<tr><th>type</th><th>total</th><th>success</th><th>p50 ms</th><th>p99 ms</th><th>errors</th></tr>"
        )
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html("<table>{}{}</table>", header, body)

    def save_model(self, request: HttpRequest, obj: Endpoint, form: ModelForm[Endpoint], change: bool) -> None:
        if not change:
            setattr(obj, NEW_SECRET_ATTR, obj.signing_secret_new())
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: Endpoint, post_url_continue: str | None = None) -> HttpResponse:
        back = reverse("admin:webhooks_app_endpoint_change", args=[obj.pk])
        title = f"Endpoint {obj.url} added"
        return _secret_page(request, title=title, secret=getattr(obj, NEW_SECRET_ATTR), back_url=back, rotated=False)

    @admin.action(
        description="Rotate signing secret (the old one keeps signing for the grace period)", permissions=["change"]
    )
    def rotate_secret(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        endpoints = list(queryset[:2])
        if len(endpoints) != 1:
            self.message_user(request, "Rotate one endpoint at a time: each secret is shown once.")
            return None
        secret = endpoint_secret_rotate(endpoint_id=endpoints[0].pk)
        back = reverse("admin:webhooks_app_endpoint_change", args=[endpoints[0].pk])
        return _secret_page(request, title="Signing secret rotated", secret=secret, back_url=back, rotated=True)


class AttemptInline(ReadOnlyMixin, admin.TabularInline[DeliveryAttempt, Delivery]):
    model = DeliveryAttempt
    fields = readonly_fields = (
        "number", "started_at", "succeeded", "status_code", "latency_ms", "error_code", "error", "response_excerpt",
    )  # fmt: skip
    extra = 0


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyMixin, ActAdminMixin):
    list_display = ["created_at", "event_type", "endpoint", "status", "attempts", "next_attempt_at", "last_error_code"]
    list_filter = ["status", "event_type", "last_error_code"]
    list_select_related = ["endpoint"]
    show_full_result_count = False
    inlines = [AttemptInline]
    acts = acts_for(Delivery)
    act_confirmation_template = ACT_TEMPLATE
    act_ordering = ("-created_at",)
    readonly_fields = ["message_link", "payload"]
    fields = [
        "message_link", "endpoint", "event_type", "status", "attempts", "next_attempt_at", "last_status_code",
        "last_error_code", "last_error", "completed_at", "payload",
    ]  # fmt: skip

    @admin.display(description="message")
    def message_link(self, obj: Delivery) -> str:
        url = reverse("admin:webhooks_app_outboundmessage_change", args=[obj.message_id])
        return format_html('<a href="{}">{}</a>', url, obj.message_id)

    @admin.display(description="payload")
    def payload(self, obj: Delivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.message.payload, indent=2, sort_keys=True))


class DeliveryInline(ReadOnlyMixin, admin.TabularInline[Delivery, OutboundMessage]):
    model = Delivery
    fields = readonly_fields = ("endpoint", "status", "attempts", "next_attempt_at", "last_status_code", "last_error")
    extra = 0
    show_change_link = True


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyMixin, ActAdminMixin):
    list_display = ["created_at", "event_type", "organization", "invalid_reason"]
    list_filter = ["event_type"]
    show_full_result_count = False
    inlines = [DeliveryInline]
    acts = acts_for(OutboundMessage)
    act_confirmation_template = ACT_TEMPLATE
    act_ordering = ("-created_at",)
    fields = ["id", "organization", "event_type", "created_at", "invalid_reason", "payload"]
