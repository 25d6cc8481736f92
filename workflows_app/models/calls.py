"""Calls and what their outcome (disposition) sets off: call logs from the voice providers'
call-ended webhooks, the per-organization disposition routing, and the ledger of each action."""

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F

from webhooks_app.models import Organization, WebhookEvent
from workflows_app.action_configs import ActionConfigError, action_config_validate
from workflows_app.models.leads import Lead
from workflows_app.models.runs import WorkflowRun


class CallProvider(models.TextChoices):
    RETELL = "retell", "Retell"
    VAPI = "vapi", "Vapi"


class CallStatus(models.TextChoices):
    REGISTERED = "registered", "Registered"  # placed by a workflow, no webhook yet
    ONGOING = "ongoing", "Ongoing"
    ENDED = "ended", "Ended"
    ANALYZED = "analyzed", "Analyzed"
    ERROR = "error", "Error"


# How far along a call is: a late or repeated webhook never moves a call back (an analyzed call
# stays analyzed when its call_ended arrives after call_analyzed). An error outranks nothing
# that came later: a call that ended is not made an error by an old event.
CALL_STATUS_RANK = {
    CallStatus.REGISTERED: 0,
    CallStatus.ONGOING: 1,
    CallStatus.ERROR: 2,
    CallStatus.ENDED: 3,
    CallStatus.ANALYZED: 4,
}


def call_status_later(current: str, incoming: str) -> str:
    return incoming if CALL_STATUS_RANK[CallStatus(incoming)] > CALL_STATUS_RANK[CallStatus(current)] else current


# Seed 004 fallback when the analysis fails: classified by duration alone.
FALLBACK_CONNECTED = "Connected - Manual Review Needed"
FALLBACK_NO_ANSWER = "No Answer"
FALLBACK_CONFIDENCE = 0.3
FALLBACK_MIN_CONNECTED_SECONDS = 30


class CallLogQuerySet(models.QuerySet["CallLog"]):
    def analysis_record(self, *, call_id: int, now: datetime, **fields: Any) -> bool:
        """Keep the first analysis a call gets: two events of one call analysed at once (a
        call_ended and a call_analyzed) store one answer, and the other is discarded."""
        return self.filter(id=call_id, analyzed_at__isnull=True).update(analyzed_at=now, updated_at=now, **fields) == 1

    def route_claim(self, *, call_id: int, now: datetime) -> bool:
        """The one event that plans the call's disposition actions; every other event of the
        call (a duplicate, the call_analyzed after call_ended) finds it routed and plans none."""
        return self.filter(id=call_id, routed_at__isnull=True).update(routed_at=now, updated_at=now) == 1


class CallLog(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="call_logs")
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.SET_NULL, related_name="call_logs")
    provider = models.CharField(max_length=20, choices=CallProvider.choices)
    provider_call_id = models.CharField(max_length=200)
    # The run whose call step placed it, when one did.
    workflow_run = models.ForeignKey(
        WorkflowRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="call_logs"
    )
    status = models.CharField(max_length=20, choices=CallStatus.choices, default=CallStatus.REGISTERED)
    direction = models.CharField(max_length=20, blank=True)
    from_number = models.CharField(max_length=32, blank=True)
    to_number = models.CharField(max_length=32, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    end_reason = models.CharField(max_length=100, blank=True)
    transcript = models.TextField(blank=True)
    recording_url = models.URLField(max_length=2000, blank=True)

    # Analysis (seed 004): the model's answer, or the duration fallback when it failed.
    ai_analysis = models.JSONField(null=True, blank=True)
    disposition = models.CharField(max_length=200, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    ai_analysis_failed = models.BooleanField(default=False)
    ai_analysis_error = models.TextField(blank=True)
    analyzed_at = models.DateTimeField(null=True, blank=True)
    # Set when the disposition's actions were planned (once per call: a redelivered webhook
    # finds it set and plans nothing new).
    routed_at = models.DateTimeField(null=True, blank=True)

    # The webhook events that told us about this call, newest last.
    last_event = models.ForeignKey(WebhookEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CallLogQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        permissions = [("retry_call_actions", "Can retry failed disposition actions")]
        constraints = [
            # Duplicate and out-of-order webhooks for one call update this row; never a second.
            models.UniqueConstraint(fields=["provider", "provider_call_id"], name="uniq_call_per_provider"),
        ]
        indexes = [models.Index(fields=["organization", "-created_at"], name="call_org_created_idx")]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} call {self.provider_call_id}"


class Disposition(models.Model):
    """An outcome a call can have, per organization, and the actions it sets off."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="dispositions")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["organization", "name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="uniq_disposition_name")]

    def __str__(self) -> str:
        return self.name


class DispositionActionType(models.TextChoices):
    START_WORKFLOW = "start_workflow", "Start workflow"
    STOP_WORKFLOW = "stop_workflow", "Stop workflow"
    UPDATE_LEAD_STATUS = "update_lead_status", "Update lead status"
    SEND_SMS = "send_sms", "Send SMS"
    SCHEDULE_CALLBACK = "schedule_callback", "Schedule callback"
    NOTIFY = "notify", "Notify"


class DispositionAction(models.Model):
    disposition = models.ForeignKey(Disposition, on_delete=models.CASCADE, related_name="actions")
    position = models.PositiveSmallIntegerField(default=1)
    action_type = models.CharField(max_length=30, choices=DispositionActionType.choices)
    config = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["disposition", "position", "id"]

    def __str__(self) -> str:
        return f"{self.get_action_type_display()} on {self.disposition}"

    def clean(self) -> None:
        try:
            self.config = action_config_validate(self.action_type, self.config)
        except ActionConfigError as exc:
            raise ValidationError({"config": str(exc)}) from None


class ActionExecutionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


# An action runs again only from these; a succeeded one is never run twice.
ACTION_RUNNABLE = (ActionExecutionStatus.PENDING, ActionExecutionStatus.FAILED)


class ActionExecutionQuerySet(models.QuerySet["ActionExecution"]):
    def _record(self, *, execution_id: int, now: datetime, **fields: Any) -> bool:
        return (
            self.filter(id=execution_id, status__in=ACTION_RUNNABLE).update(
                executed_at=now, attempts=F("attempts") + 1, **fields
            )
            == 1
        )

    def record_success(self, *, execution_id: int, now: datetime, execution_time_ms: int, result: str) -> bool:
        return self._record(
            execution_id=execution_id,
            now=now,
            status=ActionExecutionStatus.SUCCEEDED,
            success=True,
            error="",
            error_code="",
            execution_time_ms=execution_time_ms,
            result=result[:500],
        )

    def record_failure(
        self, *, execution_id: int, now: datetime, execution_time_ms: int, error: str, error_code: str
    ) -> bool:
        return self._record(
            execution_id=execution_id,
            now=now,
            status=ActionExecutionStatus.FAILED,
            success=False,
            error=error,
            error_code=error_code,
            execution_time_ms=execution_time_ms,
        )


class ActionExecution(models.Model):
    """Seed 004 disposition_action_executions: one row per (call, action), its latest outcome;
    a redelivered webhook finds the row and never runs a succeeded action again."""

    call = models.ForeignKey(CallLog, on_delete=models.CASCADE, related_name="action_executions")
    action = models.ForeignKey(DispositionAction, null=True, on_delete=models.SET_NULL, related_name="executions")
    action_type = models.CharField(max_length=30, choices=DispositionActionType.choices)
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(
        max_length=20, choices=ActionExecutionStatus.choices, default=ActionExecutionStatus.PENDING
    )
    success = models.BooleanField(null=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    execution_time_ms = models.PositiveIntegerField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Sent with the action's outbound requests (send_sms), so a retry cannot send twice.
    idempotency_key = models.CharField(max_length=200, unique=True)
    # What a succeeded action did: the run it started (or found open), the message it sent.
    result = models.CharField(max_length=500, blank=True)

    objects = ActionExecutionQuerySet.as_manager()

    class Meta:
        ordering = ["call", "id"]
        constraints = [models.UniqueConstraint(fields=["call", "action"], name="uniq_action_per_call")]
        indexes = [models.Index(fields=["status", "-executed_at"], name="actionexec_status_idx")]

    def __str__(self) -> str:
        return f"{self.action_type} for {self.call}"
