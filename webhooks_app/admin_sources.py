"""The source admin. Signing secrets and connector tokens are write-only here: a new secret is
shown once, on the page that answers its creation or rotation, and afterwards only as a hint;
a token can be replaced or removed but never read back.

Registered on import; WebhooksAppConfig.ready imports this module."""

from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template import engines
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe

from webhooks_app.admin_base import OrganizationPreselectMixin
from webhooks_app.models import SigningScheme, Source
from webhooks_app.services.sources import signing_secret_grace, source_secret_rotate

# A generated secret is useless to a sender that signs with its own key.
RETELL_ROTATION = (
    "%s: Retell signs with your Retell API key, so there is nothing to generate; enter the new key "
    "in the source's \"Provider's signing key\" field."
)
NEW_SECRET_ATTR = "_signing_secret_to_show_once"  # noqa: S105 - an attribute name

# Inline so the page that shows a secret lives next to the code that makes it.
SECRETS_SHOWN_ONCE_TEMPLATE = """{% extends "admin/base_site.html" %}
{% block content %}
<h1>{{ title }}</h1>
<p>Copy each secret now: it is stored encrypted and will not be shown again.
{% if grace %}The previous secrets keep verifying until {{ grace }} from now, so senders can switch.{% endif %}</p>
<table>
{% for source, secret in shown %}
<tr><th>{{ source.slug }}</th>
<td><input class="signing-secret" type="text" readonly size="70" value="{{ secret }}" onfocus="this.select()"
  style="font-family: monospace"></td></tr>
{% endfor %}
</table>
<p><a href="{{ back_url }}">Back</a></p>
{% endblock %}"""

ROTATE_CONFIRM_TEMPLATE = """{% extends "admin/base_site.html" %}
{% block content %}
<h1>Rotate the signing secret of {{ source.slug }}?</h1>
<p>A new secret is made and shown once. The current secrets keep verifying for {{ grace }}, then
stop.</p>
<form method="post">{% csrf_token %}
<input type="submit" value="Rotate signing secret"> <a href="{{ back_url }}">Cancel</a>
</form>
{% endblock %}"""


class SourceForm(ModelForm[Source]):
    connector_base_url = forms.URLField(
        label="Connector base URL", required=False, assume_scheme="https", help_text="Clio HTTP API only"
    )
    new_connector_token = forms.CharField(
        label="Connector token",
        required=False,
        strip=True,
        # render_value=False: the form never sends a stored token back to the browser.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave empty to keep the current token; a value replaces it.",
    )
    remove_connector_token = forms.BooleanField(label="Remove the connector token", required=False)
    provider_secret = forms.CharField(
        label="Provider's signing key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=(
            "Write-only. For providers that sign with a key of their own: Retell signs with your "
            "Retell API key (required for the Retell scheme); a Vapi server secret you set in Vapi. "
            "A value replaces every signing secret at once. Leave empty to keep them (or, on a new "
            "source, to have one generated and shown once)."
        ),
    )

    class Meta:
        model = Source
        fields = [
            "organization",
            "slug",
            "kind",
            "enabled",
            "max_payload_bytes",
            "rate_limit",
            "signing_scheme",
            "signature_header",
            "timestamp_tolerance_seconds",
            "max_attempts",
            "backoff_base_seconds",
            "backoff_factor",
            "connector",
            "connector_base_url",
            "connector_rate_limit",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("new_connector_token") and data.get("remove_connector_token"):
            raise forms.ValidationError("Either give a new connector token or remove it, not both.")
        has_secret = self.instance.pk is not None and bool(self.instance.signing_secret_entries)
        if data.get("signing_scheme") == SigningScheme.RETELL and not data.get("provider_secret") and not has_secret:
            self.add_error("provider_secret", "Retell signs with your Retell API key: enter it here.")
        return data


def _when(value: datetime) -> str:
    return date_format(timezone.localtime(value), "Y-m-d H:i")


@admin.register(Source)
class SourceAdmin(OrganizationPreselectMixin, admin.ModelAdmin[Source]):
    form = SourceForm
    list_display = ["slug", "organization", "kind", "signing_scheme", "connector", "enabled", "secrets_in_use"]
    list_filter = ["kind", "enabled", "connector"]
    list_select_related = ["organization"]
    search_fields = ["slug"]
    readonly_fields = ["signing_secrets_masked", "connector_token_state"]
    actions = ["rotate_signing_secrets"]
    change_form_template = "admin/webhooks_app/source/change_form.html"

    def get_fieldsets(self, request: HttpRequest, obj: Source | None = None) -> Any:
        can_write = self.has_change_permission(request, obj) if obj else self.has_add_permission(request)
        token_fields = ["connector_token_state"] if obj else []
        if can_write:
            token_fields += ["new_connector_token"] + (["remove_connector_token"] if obj else [])
        signing = ["signing_scheme", "signature_header", "timestamp_tolerance_seconds"]
        if can_write:
            signing.append("provider_secret")
        return [
            (None, {"fields": ["organization", "slug", "kind", "enabled", "max_payload_bytes", "rate_limit"]}),
            ("Signing", {"fields": [*signing, "signing_secrets_masked"] if obj else signing}),
            ("Retries", {"fields": ["max_attempts", "backoff_base_seconds", "backoff_factor"]}),
            ("Connector", {"fields": ["connector", "connector_base_url", "connector_rate_limit", *token_fields]}),
        ]

    @admin.display(description="secrets in use")
    def secrets_in_use(self, obj: Source) -> int:
        now = timezone.now()
        return sum(1 for entry in obj.signing_secret_list if entry.is_valid(now))

    @admin.display(description="signing secrets")
    def signing_secrets_masked(self, obj: Source) -> SafeString | str:
        now = timezone.now()
        rows = []
        for entry in obj.signing_secret_list:
            if entry.expires_at is None:
                state = "in use"
            elif entry.is_valid(now):
                state = f"expires {_when(entry.expires_at)}"
            else:
                state = f"expired {_when(entry.expires_at)}"
            rows.append((entry.hint, _when(entry.created_at), state))
        if not rows:
            return "none (nothing verifies: rotate to make one)"
        return format_html_join(
            mark_safe("<br>"),
            "<code>{}</code> created {}, {}",
            rows,
        )

    @admin.display(description="connector token")
    def connector_token_state(self, obj: Source) -> str:
        return "set (write-only)" if obj.connector_token_encrypted else "not set"

    def save_model(self, request: HttpRequest, obj: Source, form: ModelForm[Source], change: bool) -> None:
        if form.cleaned_data.get("remove_connector_token"):
            obj.connector_token = ""
        elif token := form.cleaned_data.get("new_connector_token"):
            obj.connector_token = token
        if provided := form.cleaned_data.get("provider_secret"):
            # The provider's own key: the person already has it, so nothing is shown back.
            obj.signing_secrets = [provided]
        elif not change:
            secret = obj.signing_secret_generate()
            obj.signing_secrets = [secret]
            setattr(obj, NEW_SECRET_ATTR, secret)
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: Source, post_url_continue: str | None = None) -> HttpResponse:
        secret = getattr(obj, NEW_SECRET_ATTR, None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        back = reverse("admin:webhooks_app_source_change", args=[obj.pk])
        return self._secrets_page(request, title=f"Source {obj.slug} created", shown=[(obj, secret)], back_url=back)

    @admin.action(description="Rotate signing secret (old ones expire after the grace period)", permissions=["change"])
    def rotate_signing_secrets(self, request: HttpRequest, queryset: QuerySet[Source]) -> HttpResponse:
        shown = []
        for source in queryset.order_by("slug"):
            if source.signing_scheme == SigningScheme.RETELL:
                self.message_user(request, RETELL_ROTATION % source.slug, messages.WARNING)
                continue
            shown.append((source, source_secret_rotate(source_id=source.pk)))
        if not shown:
            return HttpResponseRedirect(reverse("admin:webhooks_app_source_changelist"))
        back = reverse("admin:webhooks_app_source_changelist")
        return self._secrets_page(request, title="Signing secrets rotated", shown=shown, back_url=back, rotated=True)

    def get_urls(self) -> list[URLPattern]:
        rotate = path(
            "<path:object_id>/rotate-secret/",
            self.admin_site.admin_view(self.rotate_view),
            name="webhooks_app_source_rotate_secret",
        )
        return [rotate, *super().get_urls()]

    def rotate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        source = self.get_object(request, unquote(object_id))
        if source is None:
            raise Http404("no such source")
        if not self.has_change_permission(request, source):
            raise PermissionDenied
        back = reverse("admin:webhooks_app_source_change", args=[source.pk])
        if source.signing_scheme == SigningScheme.RETELL:
            self.message_user(request, RETELL_ROTATION % source.slug, messages.WARNING)
            return HttpResponseRedirect(back)
        if request.method != "POST":
            context = {
                **self.admin_site.each_context(request),
                "title": f"Rotate the signing secret of {source.slug}",
                "source": source,
                "grace": _grace_words(),
                "back_url": back,
            }
            return HttpResponse(engines["django"].from_string(ROTATE_CONFIRM_TEMPLATE).render(context, request))
        secret = source_secret_rotate(source_id=source.pk)
        return self._secrets_page(
            request,
            title=f"Signing secret of {source.slug} rotated",
            shown=[(source, secret)],
            back_url=back,
            rotated=True,
        )

    def _secrets_page(
        self, request: HttpRequest, *, title: str, shown: list[tuple[Source, str]], back_url: str, rotated: bool = False
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "shown": shown,
            "grace": _grace_words() if rotated else "",
            "back_url": back_url,
        }
        response = HttpResponse(engines["django"].from_string(SECRETS_SHOWN_ONCE_TEMPLATE).render(context, request))
        # The page holds secrets: no browser or proxy may keep a copy.
        response["Cache-Control"] = "no-store"
        return response


def _grace_words() -> str:
    hours = signing_secret_grace().total_seconds() / 3600
    return f"{hours:g} hours"
