"""Admin pages of workflows_app's configuration: leads, workflows with their ordered steps, and
dispositions with their actions. Runs and calls, which people operate on, are in the ops room
(ops_app.admin_workflows). A webhook step's signing secret is shown once, on the page that
answers the save that made it, and never again."""

from typing import Any

from django.contrib import admin
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import reverse

from webhooks_app.admin_base import OrganizationPreselectMixin
from workflows_app.models import Disposition, DispositionAction, Lead, Workflow, WorkflowStep

NEW_SECRETS_ATTR = "_step_secrets_to_show_once"

# Inline so the page that shows a secret lives next to the code that makes it.
STEP_SECRETS_TEMPLATE = """{% extends "admin/base_site.html" %}
{% block content %}
<h1>{{ title }}</h1>
<p>Copy each secret now: it is stored encrypted and will not be shown again. The receiving
endpoint verifies the Standard Webhooks signature (webhook-signature header) with it.</p>
<table>
{% for step, secret in shown %}
<tr><th>Step {{ step }}</th>
<td><input class="step-signing-secret" type="text" readonly size="70" value="{{ secret }}" onfocus="this.select()"
  style="font-family: monospace"></td></tr>
{% endfor %}
</table>
<p><a href="{{ back_url }}">Back to the workflow</a></p>
{% endblock %}"""


@admin.register(Lead)
class LeadAdmin(OrganizationPreselectMixin, admin.ModelAdmin[Lead]):
    list_display = ["name", "organization", "phone", "phone_ok", "email", "status", "callback_at", "created_at"]
    list_filter = ["status", "organization", ("callback_at", admin.EmptyFieldListFilter)]
    list_select_related = ["organization"]
    search_fields = ["name", "=phone", "email"]
    search_help_text = "Words of the name, the exact phone (E.164) or email."
    show_full_result_count = False

    @admin.display(description="phone valid", boolean=True)
    def phone_ok(self, obj: Lead) -> bool:
        return obj.phone_valid


class StepFormSet(BaseInlineFormSet):  # type: ignore[type-arg]
    def save_new(self, form: ModelForm[Any], commit: bool = True) -> Any:
        step = super().save_new(form, commit=False)
        self._remember(step)
        if commit:
            step.save()
        return step

    def save_existing(self, form: ModelForm[Any], obj: Any, commit: bool = True) -> Any:
        step = super().save_existing(form, obj, commit=False)
        self._remember(step)  # a step changed into a webhook step gets its secret now
        if commit:
            step.save()
        return step

    def _remember(self, step: WorkflowStep) -> None:
        secret = step.signing_secret_ensure()
        if secret is not None:
            shown = getattr(self.instance, NEW_SECRETS_ATTR, [])
            shown.append((step, secret))
            setattr(self.instance, NEW_SECRETS_ATTR, shown)


class WorkflowStepInline(admin.TabularInline[WorkflowStep, Workflow]):
    model = WorkflowStep
    formset = StepFormSet
    fields = ["position", "name", "action_type", "config", "failure_strategy", "max_retries", "retry_delay_minutes"]
    ordering = ["position"]
    extra = 1


@admin.register(Workflow)
class WorkflowAdmin(OrganizationPreselectMixin, admin.ModelAdmin[Workflow]):
    list_display = ["name", "organization", "active", "step_count", "updated_at"]
    list_filter = ["active", "organization"]
    list_select_related = ["organization"]
    search_fields = ["name"]
    inlines = [WorkflowStepInline]

    @admin.display(description="steps")
    def step_count(self, obj: Workflow) -> int:
        return obj.steps.count()

    def response_add(self, request: HttpRequest, obj: Workflow, post_url_continue: str | None = None) -> HttpResponse:
        return self._secrets_page(request, obj) or super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Workflow) -> HttpResponse:
        return self._secrets_page(request, obj) or super().response_change(request, obj)

    def _secrets_page(self, request: HttpRequest, obj: Workflow) -> HttpResponse | None:
        shown = getattr(obj, NEW_SECRETS_ATTR, None)
        if not shown:
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Signing secrets of {obj.name}'s webhook steps",
            "shown": shown,
            "back_url": reverse("admin:workflows_app_workflow_change", args=[obj.pk]),
        }
        response = HttpResponse(engines["django"].from_string(STEP_SECRETS_TEMPLATE).render(context, request))
        # The page holds secrets: no browser or proxy may keep a copy.
        response["Cache-Control"] = "no-store"
        return response


class DispositionActionInline(admin.TabularInline[DispositionAction, Disposition]):
    model = DispositionAction
    fields = ["position", "action_type", "config", "enabled"]
    ordering = ["position"]
    extra = 1


@admin.register(Disposition)
class DispositionAdmin(OrganizationPreselectMixin, admin.ModelAdmin[Disposition]):
    list_display = ["name", "organization", "action_count"]
    list_filter = ["organization"]
    search_fields = ["name"]
    inlines = [DispositionActionInline]

    @admin.display(description="actions")
    def action_count(self, obj: Disposition) -> int:
        return obj.actions.count()
