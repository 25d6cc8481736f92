"""The admin of workflow runs and calls. Runs and calls are read-only: people act on them only
through the act flow (retry the step now, skip it, reset to a step, cancel; retry a call's
failed actions), each audited. A run is started here from a lead and a workflow, with the
pre-start problems shown before anything is stored."""

import json
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.contenttypes.admin import GenericTabularInline
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html

from ops_app.acts import Act, Plan
from ops_app.acts.workflows import RESET_TO_STEP, RETRY_CALL_ACTIONS, RUN_ACTS
from ops_app.admin_act_flow import ActAdminMixin
from ops_app.models import AuditEntry
from webhooks_app.admin_base import ReadOnlyMixin
from workflows_app.models import (
    ActionExecution,
    ActionExecutionStatus,
    CallLog,
    Lead,
    RunStatus,
    StepExecution,
    Workflow,
    WorkflowRun,
)
from workflows_app.services.runs import RunAlreadyOpen, RunStartRefused, run_start, run_start_problems

START_PERMISSION = "workflows_app.start_workflowrun"


class WorkflowAuditInline(ReadOnlyMixin, GenericTabularInline):
    model = AuditEntry
    ct_field = "target_type"
    ct_fk_field = "target_id"
    verbose_name_plural = "History: what people did"
    fields = readonly_fields = ("created_at", "actor_label", "via", "act", "status_before", "status_after", "note")
    extra = 0


class StepExecutionInline(ReadOnlyMixin, admin.TabularInline[StepExecution, WorkflowRun]):
    model = StepExecution
    verbose_name_plural = "Step executions (the run's delivery log)"
    fields = readonly_fields = (
        "position",
        "action_type",
        "attempt",
        "outcome",
        "action",
        "started_at",
        "duration_ms",
        "error_code",
        "error",
        "provider_id",
        "worker",
    )
    ordering = ("started_at", "position", "attempt")
    extra = 0


class NeedsReviewFilter(admin.SimpleListFilter):
    title = "needs review"
    parameter_name = "needs_review"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(status=RunStatus.NEEDS_REVIEW)
        if self.value() == "no":
            return queryset.exclude(status=RunStatus.NEEDS_REVIEW)
        return queryset


class FailedSinceFilter(admin.SimpleListFilter):
    """The dashboard's 'failed runs' card: failed in the last 24 hours, or still open."""

    title = "failed"
    parameter_name = "failed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("24h", "Failed in the last 24 h"), ("any", "Failed, any time")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "24h":
            return queryset.filter(status=RunStatus.FAILED, updated_at__gte=timezone.now() - timedelta(hours=24))
        if self.value() == "any":
            return queryset.filter(status=RunStatus.FAILED)
        return queryset


class RunStartForm(forms.Form):
    lead = forms.ModelChoiceField(
        queryset=Lead.objects.all(), widget=AutocompleteSelect(WorkflowRun._meta.get_field("lead"), admin.site)
    )
    workflow = forms.ModelChoiceField(
        queryset=Workflow.objects.all(),
        widget=AutocompleteSelect(WorkflowRun._meta.get_field("workflow"), admin.site),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        lead, workflow = data.get("lead"), data.get("workflow")
        if lead is not None and workflow is not None:
            for problem in run_start_problems(workflow=workflow, lead=lead):
                self.add_error(problem.field if problem.field in self.fields else None, problem.message)
        return data


@admin.register(WorkflowRun)
class WorkflowRunAdmin(ReadOnlyMixin, ActAdminMixin):
    change_form_template = "admin/ops_app/workflowrun/change_form.html"
    list_display = [
        "created",
        "workflow",
        "lead",
        "status_badge",
        "step",
        "retry_count",
        "next_action_at",
        "failure_code",
    ]
    list_filter = [NeedsReviewFilter, FailedSinceFilter, "status", "step_status", "workflow"]
    search_fields = ["=id", "lead__name", "=lead__phone", "failure_reason"]
    search_help_text = "Exact run id or lead phone, or words of the lead's name or the failure."
    list_select_related = ["workflow", "lead"]
    autocomplete_fields = ["lead", "workflow"]
    list_per_page = 50
    show_full_result_count = False
    acts = {str(act.name): act for act in RUN_ACTS}
    act_confirmation_template = "admin/ops_app/workflowrun/act_confirmation.html"
    act_ordering = ("-created_at",)
    inlines = [StepExecutionInline, WorkflowAuditInline]
    fieldsets = [
        ("State", {"fields": [("status", "step_status", "current_position"), ("retry_count", "transient_attempts")]}),
        ("Schedule", {"fields": [("next_action_at", "claimed_by", "claimed_until", "heals")]}),
        ("Failure", {"fields": ["failure_code", "failure_reason"]}),
        ("Run", {"fields": ["id", ("organization", "workflow", "lead"), "started_by", "parent_run"]}),
        ("Times", {"fields": [("created_at", "updated_at", "finished_at")]}),
    ]
    readonly_fields = [
        "id",
        "organization",
        "workflow",
        "lead",
        "status",
        "step_status",
        "current_position",
        "retry_count",
        "transient_attempts",
        "next_action_at",
        "claimed_by",
        "claimed_until",
        "heals",
        "failure_code",
        "failure_reason",
        "started_by",
        "parent_run",
        "created_at",
        "updated_at",
        "finished_at",
    ]

    @admin.display(description="started", ordering="created_at")
    def created(self, obj: WorkflowRun) -> str:
        return date_format(timezone.localtime(obj.created_at), "M j, H:i")

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: WorkflowRun) -> str:
        return format_html('<span class="mh-badge mh-{}">{}</span>', obj.status, obj.get_status_display())

    @admin.display(description="step", ordering="current_position")
    def step(self, obj: WorkflowRun) -> str:
        return f"{obj.current_position} · {obj.get_step_status_display().lower()}"

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # A reset needs a step chosen for one run's workflow: offered on the run's page only.
        actions = super().get_actions(request)
        actions.pop(str(RESET_TO_STEP.name), None)
        return actions

    def act_params(self, request: HttpRequest, act: Act, target: Any) -> dict[str, Any]:
        if act is not RESET_TO_STEP:
            return {}
        raw = request.POST.get("position", "")
        if not raw.isdigit() or not target.workflow.steps.filter(position=int(raw)).exists():
            raise ValueError("Choose the step to reset the run to.")
        return {"position": int(raw)}

    def act_confirmation(
        self, request: HttpRequest, act: Act, plans: list[Plan], *, note: str, error: str, bulk: bool
    ) -> TemplateResponse:
        response = super().act_confirmation(request, act, plans, note=note, error=error, bulk=bulk)
        if act is RESET_TO_STEP and response.context_data is not None:
            run = plans[0].target
            response.context_data["steps"] = list(run.workflow.steps.order_by("position"))
            response.context_data["position"] = request.POST.get("position") or request.GET.get("position", "")
        return response

    def act_done_message(self, act: Act, target: Any) -> str:
        target.refresh_from_db()
        return (
            f"{act.title}: done. The run is {target.get_status_display().lower()}, at step {target.current_position}."
        )

    # --- starting a run

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm(START_PERMISSION))

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = RunStartForm(request.POST if request.method == "POST" else None, initial=request.GET.dict())
        if request.method == "POST" and form.is_valid():
            try:
                run = run_start(
                    workflow=form.cleaned_data["workflow"],
                    lead=form.cleaned_data["lead"],
                    started_by=f"admin:{request.user.get_username()}",
                )
            except RunAlreadyOpen as exc:
                url = reverse("admin:workflows_app_workflowrun_change", args=[exc.run.pk])
                self.message_user(request, format_html('Not started: <a href="{}">{}</a>', url, exc), messages.WARNING)
            except RunStartRefused as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Started {run}: its first step is due now.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:workflows_app_workflowrun_change", args=[run.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Start a workflow run",
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/ops_app/workflowrun/start.html", context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        run = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if run is not None:
            context.update(self.act_panel_context(request, run))
            context["steps"] = list(run.workflow.steps.order_by("position"))
        return super().change_view(request, object_id, form_url, context)


class ActionExecutionInline(ReadOnlyMixin, admin.TabularInline[ActionExecution, CallLog]):
    model = ActionExecution
    verbose_name_plural = "Disposition actions"
    fields = readonly_fields = (
        "action_type",
        "status",
        "success",
        "error_code",
        "error",
        "execution_time_ms",
        "executed_at",
        "attempts",
    )
    extra = 0


class HasFailedActionsFilter(admin.SimpleListFilter):
    title = "failed actions"
    parameter_name = "failed_actions"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Has failed actions"), ("no", "None failed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(failed_actions__gt=0)
        if self.value() == "no":
            return queryset.filter(failed_actions=0)
        return queryset


@admin.register(CallLog)
class CallLogAdmin(ReadOnlyMixin, ActAdminMixin):
    change_form_template = "admin/ops_app/calllog/change_form.html"
    list_display = [
        "created",
        "provider",
        "provider_call_id",
        "lead",
        "disposition",
        "confidence",
        "ai_analysis_failed",
        "failed",
        "status",
    ]
    list_filter = [HasFailedActionsFilter, "ai_analysis_failed", "disposition", "provider", "status"]
    search_fields = ["=provider_call_id", "lead__name", "=to_number"]
    list_select_related = ["lead"]
    list_per_page = 50
    show_full_result_count = False
    acts = {str(RETRY_CALL_ACTIONS.name): RETRY_CALL_ACTIONS}
    act_confirmation_template = "admin/ops_app/calllog/act_confirmation.html"
    act_ordering = ("-created_at",)
    inlines = [ActionExecutionInline, WorkflowAuditInline]
    fieldsets = [
        (
            "Analysis",
            {
                "fields": [
                    ("disposition", "confidence", "ai_analysis_failed"),
                    "ai_analysis_error",
                    "analysis_pretty",
                    "analyzed_at",
                ]
            },
        ),
        (
            "Call",
            {
                "fields": [
                    ("provider", "provider_call_id", "status"),
                    ("organization", "lead", "workflow_run"),
                    ("from_number", "to_number", "direction"),
                    ("started_at", "ended_at", "duration_seconds", "end_reason"),
                    "recording_url",
                    "transcript",
                ]
            },
        ),
    ]
    readonly_fields = [
        "disposition",
        "confidence",
        "ai_analysis_failed",
        "ai_analysis_error",
        "analysis_pretty",
        "analyzed_at",
        "provider",
        "provider_call_id",
        "status",
        "organization",
        "lead",
        "workflow_run",
        "from_number",
        "to_number",
        "direction",
        "started_at",
        "ended_at",
        "duration_seconds",
        "end_reason",
        "recording_url",
        "transcript",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[CallLog]:
        failed = Count("action_executions", filter=Q(action_executions__status=ActionExecutionStatus.FAILED))
        calls: QuerySet[CallLog] = super().get_queryset(request)
        return calls.annotate(failed_actions=failed)

    @admin.display(description="received", ordering="created_at")
    def created(self, obj: CallLog) -> str:
        return date_format(timezone.localtime(obj.created_at), "M j, H:i")

    @admin.display(description="failed actions", ordering="failed_actions")
    def failed(self, obj: CallLog) -> str:
        count = getattr(obj, "failed_actions", 0)
        return format_html('<strong class="mh-no">{}</strong>', count) if count else "0"

    @admin.display(description="analysis")
    def analysis_pretty(self, obj: CallLog) -> str:
        if obj.ai_analysis is None:
            return "—"
        return format_html('<pre class="mh-pre">{}</pre>', json.dumps(obj.ai_analysis, indent=2, sort_keys=True))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        call = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if call is not None:
            context.update(self.act_panel_context(request, call))
        return super().change_view(request, object_id, form_url, context)
