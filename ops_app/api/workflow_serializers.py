"""Input and output serializers of the workflow endpoints: leads, workflows, runs and their acts,
calls with their disposition actions. Output names are camelCase like the rest of the API; query
parameters and request bodies are snake_case."""

import zoneinfo
from typing import Any

from rest_framework import serializers

from ops_app.api.pagination import MAX_LIMIT
from ops_app.api.serializers import DecimalTextField, OperatorActionSerializer, PercentField
from webhooks_app.json_bodies import UNSTORABLE
from workflows_app.models import (
    ActionExecutionStatus,
    LeadStatus,
    RunStatus,
    StepStatus,
    phone_e164,
)


class StrictInput(serializers.Serializer):  # type: ignore[type-arg]
    """JSON types as the schema says: DRF would read 0 as the name "0" and "5" as the id 5."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            wrong: dict[str, Any] = {}
            for name, field in self.fields.items():
                value = data.get(name)
                if value is None:
                    continue
                if isinstance(field, serializers.CharField) and not isinstance(value, str):
                    wrong[name] = ["Must be a string."]
                elif isinstance(field, serializers.IntegerField) and (
                    isinstance(value, bool) or not isinstance(value, int)
                ):
                    wrong[name] = ["Must be an integer."]
            if wrong:
                # The other fields' problems too, in one answer.
                try:
                    super().to_internal_value({k: v for k, v in data.items() if k not in wrong})
                except serializers.ValidationError as exc:
                    if isinstance(exc.detail, dict):
                        wrong = {**exc.detail, **wrong}
                raise serializers.ValidationError(wrong)
        return super().to_internal_value(data)


class PageQuery(serializers.Serializer):  # type: ignore[type-arg]
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, required=False)
    cursor = serializers.CharField(required=False)


# --- Leads and workflows ---------------------------------------------------------------------


class LeadSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    name = serializers.CharField()
    phone = serializers.CharField(help_text="E.164 when valid; imported leads may hold one that does not parse.")
    phoneValid = serializers.BooleanField(source="phone_valid")
    email = serializers.CharField()
    timezone = serializers.CharField(help_text="IANA name; empty: the organization's.")
    status = serializers.ChoiceField(choices=LeadStatus.choices)
    customFields = serializers.DictField(source="custom_fields")
    callbackAt = serializers.DateTimeField(source="callback_at", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")


def _unstorable(value: Any) -> bool:
    if isinstance(value, str):
        return UNSTORABLE.search(value) is not None
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False


class LeadInput(StrictInput):
    name = serializers.CharField(max_length=200)
    phone = serializers.CharField(
        max_length=32, required=False, allow_blank=True, help_text="E.164 (+14155552671); stored as E.164."
    )
    email = serializers.EmailField(required=False, allow_blank=True)
    timezone = serializers.CharField(max_length=64, required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=LeadStatus.choices, default=LeadStatus.NEW)
    custom_fields = serializers.DictField(required=False, default=dict)
    organization = serializers.IntegerField(
        required=False, help_text="Staff sessions only: the organization; an API key's is its own."
    )

    def validate_phone(self, value: str) -> str:
        if not value:
            return value
        try:
            return phone_e164(value)
        except ValueError as exc:
            raise serializers.ValidationError(f"{exc}; give it in E.164, e.g. +14155552671") from None

    def validate_custom_fields(self, value: dict[str, Any]) -> dict[str, Any]:
        # jsonb holds no NUL and no lone surrogate: refused here, named, not a database error.
        if _unstorable(value):
            raise serializers.ValidationError("may not contain NUL characters or unpaired surrogates")
        return value

    def validate_timezone(self, value: str) -> str:
        if value:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise serializers.ValidationError(f"unknown time zone {value!r}") from None
        return value


class StepSerializer(serializers.Serializer):  # type: ignore[type-arg]
    position = serializers.IntegerField()
    name = serializers.CharField()
    actionType = serializers.CharField(source="action_type")
    config = serializers.DictField()
    failureStrategy = serializers.CharField(source="failure_strategy")
    maxRetries = serializers.IntegerField(source="max_retries")
    retryDelayMinutes = serializers.IntegerField(source="retry_delay_minutes")


class WorkflowSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    active = serializers.BooleanField()
    steps = StepSerializer(many=True, help_text="In order of position.")
    createdAt = serializers.DateTimeField(source="created_at")


# --- Runs ------------------------------------------------------------------------------------


class RunStartInput(StrictInput):
    lead = serializers.IntegerField(min_value=1, help_text="The lead's id.")
    workflow = serializers.IntegerField(min_value=1, help_text="The workflow's id.")


class ExecutionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    position = serializers.IntegerField()
    actionType = serializers.CharField(source="action_type")
    attempt = serializers.IntegerField()
    taskId = serializers.CharField(source="task_id")
    worker = serializers.CharField()
    startedAt = serializers.DateTimeField(source="started_at")
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)
    durationMs = serializers.IntegerField(source="duration_ms", allow_null=True)
    outcome = serializers.CharField()
    action = serializers.CharField(help_text="The strategy's action, where one applied (e.g. step_skipped_on_error).")
    error = serializers.CharField()
    errorCode = serializers.CharField(source="error_code")
    providerId = serializers.CharField(source="provider_id")


class RunSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.UUIDField()
    workflow = serializers.IntegerField(source="workflow_id")
    workflowName = serializers.CharField(source="workflow.name")
    lead = serializers.IntegerField(source="lead_id")
    leadName = serializers.CharField(source="lead.name")
    status = serializers.ChoiceField(choices=RunStatus.choices)
    stepStatus = serializers.ChoiceField(source="step_status", choices=StepStatus.choices)
    currentPosition = serializers.IntegerField(source="current_position", help_text="1-based position of the step.")
    nextActionAt = serializers.DateTimeField(source="next_action_at", allow_null=True)
    retryCount = serializers.IntegerField(source="retry_count")
    failureReason = serializers.CharField(source="failure_reason")
    failureCode = serializers.CharField(source="failure_code")
    startedBy = serializers.CharField(source="started_by")
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)


class RunDetailSerializer(RunSerializer):
    executions = ExecutionSerializer(
        source="executions_list", many=True, help_text="The run's delivery log: one per step attempt."
    )
    operatorActions = OperatorActionSerializer(source="audit_trail", many=True, help_text="Audit trail.")


class RunConflictSerializer(serializers.Serializer):  # type: ignore[type-arg]
    error = serializers.DictField(help_text="code run_already_open and a message.")
    run = RunSerializer(help_text="The open run of this workflow for the lead.")


class RunNoteInput(StrictInput):
    note = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, help_text="Why; kept in the audit trail."
    )


class RunSkipInput(StrictInput):
    note = serializers.CharField(max_length=2000, help_text="Required: why the step is skipped (audited).")


class RunResetInput(RunNoteInput):
    position = serializers.IntegerField(min_value=1, help_text="The step (1-based position) to start again from.")


class RunActResultSerializer(serializers.Serializer):  # type: ignore[type-arg]
    success = serializers.BooleanField()
    message = serializers.CharField()
    run = RunSerializer()
    action = OperatorActionSerializer(help_text="The audit record of this act.")


# --- Calls -----------------------------------------------------------------------------------


class ActionExecutionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    actionType = serializers.CharField(source="action_type")
    status = serializers.ChoiceField(choices=ActionExecutionStatus.choices)
    success = serializers.BooleanField(allow_null=True)
    error = serializers.CharField()
    errorCode = serializers.CharField(source="error_code")
    executionTimeMs = serializers.IntegerField(source="execution_time_ms", allow_null=True)
    executedAt = serializers.DateTimeField(source="executed_at", allow_null=True)
    attempts = serializers.IntegerField()


class CallSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    provider = serializers.CharField()
    providerCallId = serializers.CharField(source="provider_call_id")
    lead = serializers.IntegerField(source="lead_id", allow_null=True)
    workflowRun = serializers.UUIDField(source="workflow_run_id", allow_null=True)
    status = serializers.CharField()
    durationSeconds = serializers.FloatField(source="duration_seconds", allow_null=True)
    endReason = serializers.CharField(source="end_reason")
    disposition = serializers.CharField()
    confidence = serializers.FloatField(allow_null=True)
    aiAnalysisFailed = serializers.BooleanField(source="ai_analysis_failed", help_text="The fallback disposition.")
    failedActions = serializers.IntegerField(source="failed_actions")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    endedAt = serializers.DateTimeField(source="ended_at", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")


class CallDetailSerializer(CallSerializer):
    transcript = serializers.CharField()
    recordingUrl = serializers.CharField(source="recording_url")
    aiAnalysis = serializers.JSONField(source="ai_analysis", allow_null=True)
    aiAnalysisError = serializers.CharField(source="ai_analysis_error")
    actionExecutions = ActionExecutionSerializer(source="action_executions.all", many=True)
    operatorActions = OperatorActionSerializer(source="audit_trail", many=True, help_text="Audit trail.")


class CallActResultSerializer(serializers.Serializer):  # type: ignore[type-arg]
    success = serializers.BooleanField()
    message = serializers.CharField()
    call = CallSerializer()
    action = OperatorActionSerializer(help_text="The audit record of this act.")


# --- Stats -----------------------------------------------------------------------------------


class StepCountsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    steps = serializers.IntegerField(help_text="Steps (a run's step at one position) attempted in the window.")
    succeeded = serializers.IntegerField(help_text="Steps one of whose attempts succeeded.")
    failed = serializers.IntegerField(help_text="steps - succeeded: every attempt failed (or is still running).")
    attempts = serializers.IntegerField(help_text="Step executions (the delivery log's rows) in the window.")
    successRate = PercentField(source="success_rate", allow_null=True, help_text="succeeded / steps; null when none.")
    avgAttempts = DecimalTextField(
        source="avg_attempts", allow_null=True, help_text="attempts / steps; null when none."
    )


class RunsByStatusSerializer(serializers.Serializer):  # type: ignore[type-arg]
    active = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    needsReview = serializers.IntegerField(source="needs_review")


class WorkflowStatsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    timeRange = serializers.CharField(source="time_range.name")
    start = serializers.DateTimeField(help_text="Window start, inclusive (the windows of delivery-stats).")
    end = serializers.DateTimeField(help_text="Window end, exclusive.")
    summary = StepCountsSerializer(help_text="Step attempts started in [start, end).")
    byStepType = serializers.DictField(
        source="by_step_type", child=StepCountsSerializer(), help_text="By action type (call, sms, email, ...)."
    )
    runsByStatus = RunsByStatusSerializer(
        source="runs_by_status", help_text="Runs started in the window, by status now."
    )
    runsTotal = serializers.IntegerField(source="runs_total", help_text="Runs started in the window.")
    needsReview = serializers.IntegerField(
        source="needs_review", help_text="Runs waiting for a person's decision now, whenever started."
    )
    generatedAt = serializers.DateTimeField(source="generated_at")
