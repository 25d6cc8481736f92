"""The workflow endpoints: leads and workflows (to find ids; leads can be created), runs (start,
list, detail, the acts), calls with their disposition actions, and workflow delivery stats.
Org-scoped like the events: a key sees its organization only, anything else is 404."""

import uuid
from typing import Any, TypeVar

from django.db.models import Count, Model, Prefetch, Q, QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from config.http_errors import error_body
from ops_app.acts import Act, ActRefused, act_run
from ops_app.acts.workflows import CANCEL_RUN, RESET_TO_STEP, RETRY_CALL_ACTIONS, RETRY_STEP, SKIP_STEP
from ops_app.api.authentication import Scope, scope_of
from ops_app.api.exceptions import Conflict, errors
from ops_app.api.pagination import created_pagination
from ops_app.api.serializers import DeliveryStatsQuery
from ops_app.api.views import ApiView, _query
from ops_app.api.workflow_filters import CallFilter, LeadFilter, RunFilter
from ops_app.api.workflow_serializers import (
    CallActResultSerializer,
    CallDetailSerializer,
    CallSerializer,
    LeadInput,
    LeadSerializer,
    PageQuery,
    RunActResultSerializer,
    RunConflictSerializer,
    RunDetailSerializer,
    RunNoteInput,
    RunResetInput,
    RunSerializer,
    RunSkipInput,
    RunStartInput,
    WorkflowSerializer,
    WorkflowStatsSerializer,
)
from ops_app.models import AuditEntry
from ops_app.workflow_stats import workflow_stats
from webhooks_app.models import Organization
from workflows_app.models import (
    ActionExecutionStatus,
    CallLog,
    Lead,
    StepExecution,
    Workflow,
    WorkflowRun,
    WorkflowStep,
)
from workflows_app.services.runs import RunAlreadyOpen, RunStartRefused, run_start, run_start_problems

M = TypeVar("M", bound=Model)

VIEW_RUNS = "workflows_app.view_workflowrun"
START_RUNS = "workflows_app.start_workflowrun"
VIEW_CALLS = "workflows_app.view_calllog"
VIEW_LEADS = "workflows_app.view_lead"
ADD_LEADS = "workflows_app.add_lead"
VIEW_WORKFLOWS = "workflows_app.view_workflow"


def _scoped(queryset: QuerySet[M], scope: Scope) -> QuerySet[M]:
    return queryset if scope.organization is None else queryset.filter(organization=scope.organization)


def _one_or_404(queryset: QuerySet[M], raw_id: str, noun: str, parse: type = int) -> M:
    """Another organization's row is 'not found', exactly like one that does not exist."""
    try:
        key = parse(raw_id)
    except ValueError as exc:
        raise NotFound(f"No such {noun}.") from exc
    row = queryset.filter(pk=key).first()
    if row is None:
        raise NotFound(f"No such {noun}.")
    return row


def _id_param(noun: str, kind: OpenApiTypes = OpenApiTypes.INT) -> OpenApiParameter:
    return OpenApiParameter("id", kind, OpenApiParameter.PATH, description=f"The {noun}'s id.")


RUN_ID = _id_param("run", OpenApiTypes.UUID)
CALL_ID = _id_param("call")


def _runs(scope: Scope) -> QuerySet[WorkflowRun]:
    return _scoped(WorkflowRun.objects.select_related("workflow", "lead"), scope)


def _calls(scope: Scope) -> QuerySet[CallLog]:
    failed = Count("action_executions", filter=Q(action_executions__status=ActionExecutionStatus.FAILED))
    return _scoped(CallLog.objects.annotate(failed_actions=failed), scope)


class ScopedListView(generics.ListAPIView):  # type: ignore[type-arg]
    """A filtered, cursor-paginated list of one organization's rows (all of them for staff)."""

    throttle_scope = "read"
    required_permission = ""
    filter_backends = [DjangoFilterBackend]
    model: type[Model]

    def scoped(self, scope: Scope) -> QuerySet[Any]:
        raise NotImplementedError

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        _query(PageQuery, request)  # limit out of range or not a number: 400, not the default
        return super().list(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular reading the filters
            return self.model._default_manager.none()
        return self.scoped(scope_of(self.request))


# --- Leads and workflows ---------------------------------------------------------------------


class LeadListView(ScopedListView):
    required_permission = VIEW_LEADS
    model = Lead
    serializer_class = LeadSerializer
    filterset_class = LeadFilter
    pagination_class = created_pagination("leads", int_ids=True)

    def scoped(self, scope: Scope) -> QuerySet[Lead]:
        return _scoped(Lead.objects.all(), scope)

    def get_throttles(self) -> list[Any]:
        self.throttle_scope = "write" if self.request.method == "POST" else "read"
        return super().get_throttles()

    def check_permissions(self, request: Request) -> None:
        # Creating needs add_lead; reading view_lead (API keys may do both).
        self.required_permission = ADD_LEADS if request.method == "POST" else VIEW_LEADS
        super().check_permissions(request)

    @extend_schema(
        operation_id="leads_list",
        summary="Leads, newest first",
        responses={200: LeadSerializer(many=True), **errors(400)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="lead_create",
        summary="Create a lead",
        description="The phone is checked with libphonenumber and stored in E.164; an invalid one is a 400.",
        request=LeadInput,
        responses={201: LeadSerializer, **errors(400)},
    )
    def post(self, request: Request) -> Response:
        scope = scope_of(request)
        body = LeadInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        organization_id = data.pop("organization", None)
        organization = scope.organization
        if organization is None:
            organization = Organization.objects.filter(pk=organization_id).first() if organization_id else None
            if organization is None:
                raise ValidationError({"organization": ["A staff session must name an existing organization."]})
        lead = Lead.objects.create(organization=organization, **data)
        response = Response(LeadSerializer(lead).data, status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/leads/{lead.pk}"
        return response


class LeadDetailView(ApiView):
    required_permission = VIEW_LEADS

    @extend_schema(
        operation_id="lead_retrieve",
        summary="One lead",
        parameters=[_id_param("lead")],
        responses={200: LeadSerializer, **errors(404)},
    )
    def get(self, request: Request, id: str) -> Response:
        lead = _one_or_404(_scoped(Lead.objects.all(), scope_of(request)), id, "lead")
        return Response(LeadSerializer(lead).data)


def _workflows(scope: Scope) -> QuerySet[Workflow]:
    steps = Prefetch("steps", queryset=WorkflowStep.objects.order_by("position"))
    return _scoped(Workflow.objects.prefetch_related(steps), scope)


class WorkflowListView(ScopedListView):
    required_permission = VIEW_WORKFLOWS
    model = Workflow
    serializer_class = WorkflowSerializer
    filter_backends: list[Any] = []
    pagination_class = created_pagination("workflows", int_ids=True)

    def scoped(self, scope: Scope) -> QuerySet[Workflow]:
        return _workflows(scope)

    @extend_schema(
        operation_id="workflows_list",
        summary="Workflows with their steps",
        responses={200: WorkflowSerializer(many=True), **errors(400)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class WorkflowDetailView(ApiView):
    required_permission = VIEW_WORKFLOWS

    @extend_schema(
        operation_id="workflow_retrieve",
        summary="One workflow with its steps",
        parameters=[_id_param("workflow")],
        responses={200: WorkflowSerializer, **errors(404)},
    )
    def get(self, request: Request, id: str) -> Response:
        return Response(WorkflowSerializer(_one_or_404(_workflows(scope_of(request)), id, "workflow")).data)


# --- Runs ------------------------------------------------------------------------------------


class RunListView(ScopedListView):
    required_permission = VIEW_RUNS
    model = WorkflowRun
    serializer_class = RunSerializer
    filterset_class = RunFilter
    pagination_class = created_pagination("runs")

    def scoped(self, scope: Scope) -> QuerySet[WorkflowRun]:
        return _runs(scope)

    def check_permissions(self, request: Request) -> None:
        self.required_permission = START_RUNS if request.method == "POST" else VIEW_RUNS
        super().check_permissions(request)

    def get_throttles(self) -> list[Any]:
        self.throttle_scope = "write" if self.request.method == "POST" else "read"
        return super().get_throttles()

    @extend_schema(
        operation_id="workflow_runs_list",
        summary="Workflow runs, newest first",
        responses={200: RunSerializer(many=True), **errors(400)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="workflow_run_start",
        summary="Start a workflow for a lead",
        description="201 with the new run, due now. 409 with the open run when the workflow already "
        "runs (or waits for review) for the lead, even when two starts race. 400 naming the "
        "problem when the run could not succeed: an invalid phone for call or SMS steps, no email "
        "for email steps, an inactive or empty workflow, an unknown lead or workflow.",
        request=RunStartInput,
        responses={
            201: RunSerializer,
            409: OpenApiResponse(RunConflictSerializer, description="An open run exists; it is returned."),
            **errors(400),
        },
    )
    def post(self, request: Request) -> Response:
        scope = scope_of(request)
        body = RunStartInput(data=request.data)
        body.is_valid(raise_exception=True)
        lead = _scoped(Lead.objects.all(), scope).filter(pk=body.validated_data["lead"]).first()
        workflow = _scoped(Workflow.objects.all(), scope).filter(pk=body.validated_data["workflow"]).first()
        unknown: dict[str, list[str]] = {}
        if lead is None:
            unknown["lead"] = ["Unknown lead."]
        if workflow is None:
            unknown["workflow"] = ["Unknown workflow."]
        if unknown or lead is None or workflow is None:
            raise ValidationError(unknown)
        problems: dict[str, list[str]] = {}
        for problem in run_start_problems(workflow=workflow, lead=lead):
            problems.setdefault(problem.field, []).append(problem.message)
        if problems:
            raise ValidationError(problems)
        try:
            run = run_start(workflow=workflow, lead=lead, started_by=f"api:{scope.actor.label}")
        except RunStartRefused as exc:  # changed between the check and the start
            raise ValidationError({"workflow": [str(exc)]}) from exc
        except RunAlreadyOpen as exc:
            body_409 = {**error_body("run_already_open", str(exc)), "run": RunSerializer(exc.run).data}
            return Response(body_409, status=status.HTTP_409_CONFLICT)
        response = Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/workflow-runs/{run.id}"
        return response


class RunDetailView(ApiView):
    required_permission = VIEW_RUNS

    @extend_schema(
        operation_id="workflow_run_retrieve",
        summary="One run with its step executions and audit trail",
        parameters=[RUN_ID],
        responses={200: RunDetailSerializer, **errors(404)},
    )
    def get(self, request: Request, id: str) -> Response:
        run = _one_or_404(_runs(scope_of(request)), id, "workflow run", uuid.UUID)
        run.executions_list = list(StepExecution.objects.filter(run=run).order_by("started_at", "position", "attempt"))  # type: ignore[attr-defined]
        run.audit_trail = list(AuditEntry.objects.for_target(run).order_by("created_at", "id"))  # type: ignore[attr-defined]
        data = RunDetailSerializer(run).data
        return Response(data)


def _run_act_view(
    act: Act,
    *,
    input_class: type[serializers.Serializer],  # type: ignore[type-arg]
    refusal_code: str,
    message: str,
    operation_id: str,
    summary: str,
) -> type[ApiView]:
    """One view per act on a run; each checks the act's own permission and audits like the admin."""

    @extend_schema(
        operation_id=operation_id,
        summary=summary,
        description="Audited like the admin's act. 409 when the act does not apply to the run as it "
        "is now (its status, or its step executing right now).",
        parameters=[RUN_ID],
        request=input_class,
        responses={200: RunActResultSerializer, **errors(400, 404, 409)},
    )
    def post(self: ApiView, request: Request, id: str) -> Response:
        scope = scope_of(request)
        run = _one_or_404(_runs(scope), id, "workflow run", uuid.UUID)
        body = input_class(data=request.data)
        body.is_valid(raise_exception=True)
        params = {k: v for k, v in body.validated_data.items() if k != "note"}
        if "position" in params and not run.workflow.steps.filter(position=params["position"]).exists():
            raise ValidationError({"position": [f"The workflow has no step {params['position']}."]})
        try:
            action = act_run(act=act, target=run, actor=scope.actor, note=body.validated_data.get("note", ""), **params)
        except ActRefused as exc:
            raise Conflict(str(exc), code=refusal_code) from exc
        run = _runs(scope).get(pk=run.pk)
        result = {"success": True, "message": message, "run": run, "action": action}
        return Response(RunActResultSerializer(result).data)

    attrs = {"throttle_scope": "write", "required_permission": act.permission, "post": post}
    return type(f"Run{act.name.title().replace('_', '')}View", (ApiView,), attrs)


RunRetryView = _run_act_view(
    RETRY_STEP,
    input_class=RunNoteInput,
    refusal_code="nothing_to_retry",
    message="The step runs again as soon as a worker is free.",
    operation_id="workflow_run_retry",
    summary="Retry the run's current step now, with a fresh retry budget",
)
RunSkipView = _run_act_view(
    SKIP_STEP,
    input_class=RunSkipInput,
    refusal_code="nothing_to_skip",
    message="The step was skipped; the run moved on.",
    operation_id="workflow_run_skip",
    summary="Skip the run's current step (the last step: the run completes)",
)
RunCancelView = _run_act_view(
    CANCEL_RUN,
    input_class=RunNoteInput,
    refusal_code="not_cancellable",
    message="The run is cancelled.",
    operation_id="workflow_run_cancel",
    summary="Cancel the run",
)
RunResetView = _run_act_view(
    RESET_TO_STEP,
    input_class=RunResetInput,
    refusal_code="not_resettable",
    message="The run starts again from the chosen step.",
    operation_id="workflow_run_reset",
    summary="Reset the run to a step, due now",
)


# --- Calls -----------------------------------------------------------------------------------


class CallListView(ScopedListView):
    required_permission = VIEW_CALLS
    model = CallLog
    serializer_class = CallSerializer
    filterset_class = CallFilter
    pagination_class = created_pagination("calls", int_ids=True)

    def scoped(self, scope: Scope) -> QuerySet[CallLog]:
        return _calls(scope)

    @extend_schema(
        operation_id="call_logs_list",
        summary="Calls with their disposition, newest first",
        responses={200: CallSerializer(many=True), **errors(400)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


def _call_detail(call: CallLog) -> CallLog:
    call.audit_trail = list(AuditEntry.objects.for_target(call).order_by("created_at", "id"))  # type: ignore[attr-defined]
    return call


class CallDetailView(ApiView):
    required_permission = VIEW_CALLS

    @extend_schema(
        operation_id="call_log_retrieve",
        summary="One call with its analysis and disposition action executions",
        parameters=[CALL_ID],
        responses={200: CallDetailSerializer, **errors(404)},
    )
    def get(self, request: Request, id: str) -> Response:
        call = _one_or_404(_calls(scope_of(request)).prefetch_related("action_executions"), id, "call")
        return Response(CallDetailSerializer(_call_detail(call)).data)


class CallRetryActionsView(ApiView):
    throttle_scope = "write"
    required_permission = RETRY_CALL_ACTIONS.permission

    @extend_schema(
        operation_id="call_log_retry_actions",
        summary="Retry the call's failed disposition actions",
        description="Actions that succeeded are never run again. Audited like the admin's act.",
        parameters=[CALL_ID],
        request=RunNoteInput,
        responses={200: CallActResultSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, id: str) -> Response:
        scope = scope_of(request)
        call = _one_or_404(_calls(scope), id, "call")
        body = RunNoteInput(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            action = act_run(
                act=RETRY_CALL_ACTIONS, target=call, actor=scope.actor, note=body.validated_data.get("note", "")
            )
        except ActRefused as exc:
            raise Conflict(str(exc), code="nothing_to_retry") from exc
        call = _calls(scope).get(pk=call.pk)
        result = {"success": True, "message": "Failed actions queued for a retry.", "call": call, "action": action}
        return Response(CallActResultSerializer(result).data)


# --- Stats -----------------------------------------------------------------------------------


class WorkflowStatsView(ApiView):
    required_permission = VIEW_RUNS

    @extend_schema(
        operation_id="workflow_stats",
        summary="Workflow delivery statistics over a time range",
        parameters=[DeliveryStatsQuery],
        responses={200: WorkflowStatsSerializer, **errors(400)},
    )
    def get(self, request: Request) -> Response:
        query = _query(DeliveryStatsQuery, request)
        stats = workflow_stats(organization_id=scope_of(request).organization_id, time_range=query["range"])
        return Response(WorkflowStatsSerializer(stats).data)
