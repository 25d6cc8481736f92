"""Calls from the voice providers' webhooks: one CallLog per provider call, whatever order and
however often its events arrive, and its analysis, asked once (seed 004 analyze-call-transcript,
with the fallback disposition when the model fails)."""

import logging
import uuid
from dataclasses import fields as dataclass_fields
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from webhooks_app.errors import ErrorCode, ProcessingError
from webhooks_app.models import WebhookEvent
from webhooks_app.reporting import report_failure
from webhooks_app.services.outbound import outbound_emit
from workflows_app.call_reports import CallReport
from workflows_app.connectors.analysis import Analysis, AnalysisFailed, analysis_request
from workflows_app.models import CallLog, Disposition, Lead, WorkflowRun
from workflows_app.models.calls import (
    FALLBACK_CONFIDENCE,
    FALLBACK_CONNECTED,
    FALLBACK_MIN_CONNECTED_SECONDS,
    FALLBACK_NO_ANSWER,
    call_status_later,
)

logger = logging.getLogger(__name__)

# Fields a webhook fills when it knows them; a later event that lacks one never blanks it.
_REPORTED = ("direction", "from_number", "to_number", "started_at", "ended_at", "duration_seconds", "end_reason")
_REPORTED_TEXT = ("transcript", "recording_url")


def _metadata_id(report: CallReport, key: str) -> str:
    value = report.metadata.get(key)
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""


def _lead_for(organization_id: int, report: CallReport, run: WorkflowRun | None) -> Lead | None:
    """The lead by the metadata the call was placed with, else its run's, else by phone."""
    leads = Lead.objects.filter(organization_id=organization_id)
    lead_id = _metadata_id(report, "lead_id")
    if lead_id.isdigit():
        lead = leads.filter(id=int(lead_id)).first()
        if lead is not None:
            return lead
    if run is not None:
        return run.lead
    phone = report.lead_phone
    return leads.filter(phone=phone).order_by("-updated_at").first() if phone else None


def _run_for(organization_id: int, report: CallReport) -> WorkflowRun | None:
    try:
        run_id = uuid.UUID(_metadata_id(report, "run_id"))
    except ValueError:  # absent, or not a run id at all
        return None
    return WorkflowRun.objects.select_related("lead").filter(organization_id=organization_id, id=run_id).first()


def _changes(call: CallLog, report: CallReport) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in _REPORTED:
        incoming = getattr(report, name)
        if incoming not in (None, "") and getattr(call, name) in (None, ""):
            changes[name] = incoming
    for name in _REPORTED_TEXT:
        incoming = getattr(report, name)
        # The fuller text wins: call_analyzed repeats call_ended's transcript, never shortens it.
        if incoming and len(incoming) > len(getattr(call, name)):
            changes[name] = incoming
    status = call_status_later(call.status, report.status)
    if status != call.status:
        changes["status"] = status
    return changes


def call_record(*, event: WebhookEvent, report: CallReport) -> CallLog:
    """Create or update the call's row from one of its webhooks. The unique (provider, call id)
    decides who creates it; every later event locks the row and only fills in or moves forward."""
    organization_id = event.organization_id
    run = _run_for(organization_id, report)
    lead = _lead_for(organization_id, report, run)
    try:
        with transaction.atomic():
            call = CallLog.objects.create(
                organization_id=organization_id,
                provider=report.provider,
                provider_call_id=report.provider_call_id,
                lead=lead,
                workflow_run=run,
                status=report.status,
                last_event=event,
                **{
                    f.name: getattr(report, f.name)
                    for f in dataclass_fields(report)
                    if f.name in (*_REPORTED, *_REPORTED_TEXT) and getattr(report, f.name) is not None
                },
            )
            return call
    except IntegrityError:
        pass  # the call exists: placed by a workflow's call step, or told of by another event
    with transaction.atomic():
        call = CallLog.objects.select_for_update().get(
            provider=report.provider, provider_call_id=report.provider_call_id
        )
        if call.organization_id != organization_id:
            # Another organization's call id: never touch its row from this source.
            raise ProcessingError(
                f"{report.provider} call {report.provider_call_id} belongs to another organization",
                code=ErrorCode.VALIDATION,
            )
        changes = _changes(call, report)
        if call.lead_id is None and lead is not None:
            changes["lead"] = lead
        if call.workflow_run_id is None and run is not None:
            changes["workflow_run"] = run
        changes["last_event"] = event
        for name, value in changes.items():
            setattr(call, name, value)
        call.save(update_fields=[*changes, "updated_at"])
    return call


def fallback_analysis(duration_seconds: float | None) -> dict[str, Any]:
    """Seed 004: classified by duration alone when the model cannot answer."""
    connected = (duration_seconds or 0) > FALLBACK_MIN_CONNECTED_SECONDS
    return {
        "disposition": FALLBACK_CONNECTED if connected else FALLBACK_NO_ANSWER,
        "confidence": FALLBACK_CONFIDENCE,
        "reasoning": "AI analysis failed, auto-classified by duration",
        "key_points": ["AI analysis unavailable"],
        "sentiment": "neutral",
        "ai_analysis_failed": True,
    }


def call_analyse(*, call: CallLog, event: WebhookEvent) -> CallLog:
    """Ask the model for the call's disposition once; on any failure store the fallback, so the
    call is tracked either way (seed scenario 3). A call analysed before is returned as it is."""
    if call.analyzed_at is not None:
        return call
    names = list(Disposition.objects.filter(organization_id=call.organization_id).values_list("name", flat=True))
    answer: Analysis | None = None
    failure: AnalysisFailed | None = None
    asked = False
    if not call.transcript.strip():
        failure = AnalysisFailed("the call has no transcript to analyse", code=ErrorCode.VALIDATION)
    elif not names:
        failure = AnalysisFailed("the organization has no dispositions to choose from", code=ErrorCode.VALIDATION)
    else:
        asked = True
        try:
            # Outside any transaction: the model may take its whole timeout.
            answer = analysis_request(
                transcript=call.transcript, duration_seconds=call.duration_seconds, dispositions=names
            )
        except AnalysisFailed as exc:
            failure = exc
    now = timezone.now()
    if answer is not None:
        fields: dict[str, Any] = {
            "ai_analysis": answer.as_json(),
            "disposition": answer.disposition,
            "confidence": answer.confidence,
            "ai_analysis_failed": False,
            "ai_analysis_error": "",
        }
    else:
        assert failure is not None
        fallback = fallback_analysis(call.duration_seconds)
        fields = {
            "ai_analysis": fallback,
            "disposition": fallback["disposition"],
            "confidence": FALLBACK_CONFIDENCE,
            "ai_analysis_failed": True,
            "ai_analysis_error": failure.message,
        }
    if failure is not None and asked:
        # Only a model that failed is an error; a call nobody answered has nothing to analyse.
        report_failure(
            logger,
            "analysis of call %s failed, fallback disposition %r: [%s] %s",
            call.id,
            fields["disposition"],
            failure.code,
            failure.message,
            event=event,
            error_code=failure.code,
            function="workflows_app.services.calls.call_analyse",
            action="analyse_call",
        )
    with transaction.atomic():
        if CallLog.objects.analysis_record(call_id=call.id, now=now, **fields):
            # Customers' endpoints subscribed to call.disposition_set hear of it with the change.
            outbound_emit(
                organization_id=call.organization_id,
                event_type="call.disposition_set",
                key=f"call:{call.id}:disposition",
                payload={
                    "call": {"id": call.id, "provider": call.provider, "provider_call_id": call.provider_call_id},
                    "lead_id": call.lead_id,
                    "disposition": fields["disposition"],
                    "confidence": fields["confidence"],
                    "ai_analysis_failed": fields["ai_analysis_failed"],
                },
                now=now,
            )
    return CallLog.objects.select_related("lead", "workflow_run").get(id=call.id)
