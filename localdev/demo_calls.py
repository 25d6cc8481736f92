"""The workflows half of send_sample_webhooks: start the demo leads' runs through the real
service, send signed Retell and Vapi call webhooks for them, and describe what became of both.

Each call is scripted for one disposition route (localdev.demo_workflows): a callback request
that starts the callback workflow (which fails: the lead's phone reaches a provider that is
down), a transcript the sandbox analysis cannot answer (the fallback disposition), a wrong
number (one action fails, the other runs) and an interested lead.
"""

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q

from localdev.demo_workflows import LEADS, NEW_LEAD, RETELL_SOURCE, VAPI_SOURCE
from webhooks_app.models import Source
from webhooks_app.signatures import RETELL_HEADER, VAPI_SECRET_HEADER, sign_retell_digest
from workflows_app.models import (
    ActionExecution,
    ActionExecutionStatus,
    CallLog,
    Lead,
    RunStatus,
    StepExecution,
    StepStatus,
    Workflow,
    WorkflowRun,
)
from workflows_app.services.runs import RunAlreadyOpen, RunStartRefused, run_start

CALL_SOURCES = (RETELL_SOURCE, VAPI_SOURCE)
STARTED_BY = "send_sample_webhooks"
DEMO_FROM_NUMBER = "+14155550100"


@dataclass(frozen=True)
class CallScript:
    label: str
    source: str
    lead: str
    transcript: str
    duration_seconds: int
    end_reason: str


# Lead names are localdev.demo_workflows.LEADS'.
CALL_SCRIPTS = [
    CallScript(
        "retell: callback requested -> the callback workflow starts (and fails: provider down)",
        RETELL_SOURCE,
        "Alan Turing",
        "Agent: Hi Alan, this is Demo Law about your enquiry.\nUser: I'm driving, please call me back tomorrow.",
        95,
        "user_hangup",
    ),
    CallScript(
        "retell: analysis answers garbage -> fallback disposition by duration",
        RETELL_SOURCE,
        "Grace Hopper",
        "Agent: Hello Grace?\nUser: [garbled audio] ... the line ... [garbled]",
        48,
        "user_hangup",
    ),
    CallScript(
        "vapi: wrong number -> start_workflow fails, update_lead_status runs",
        VAPI_SOURCE,
        "Barbara Liskov",
        "AI: Hello, is this Barbara?\nUser: No, you have the wrong number.",
        12,
        "customer-ended-call",
    ),
    CallScript(
        "vapi: interested -> lead qualified, its runs stopped",
        VAPI_SOURCE,
        "Edsger Dijkstra",
        "AI: Hi Edsger, you asked about a consultation.\nUser: Yes, I'm interested, send me the details.",
        64,
        "customer-ended-call",
    ),
]


@dataclass
class CallSample:
    script: CallScript
    call_id: str
    bodies: list[bytes] = field(default_factory=list)


def retell_headers(api_key: str, body: bytes) -> dict[str, str]:
    """x-retell-signature as Retell sends it: v=<unix ms>,d=<hex HMAC of body + ms>, keyed
    with the API key."""
    stamp = str(int(time.time() * 1000))
    return {
        "content-type": "application/json",
        RETELL_HEADER: f"v={stamp},d={sign_retell_digest(api_key, body, stamp)}",
    }


def vapi_headers(secret: str) -> dict[str, str]:
    return {"content-type": "application/json", VAPI_SECRET_HEADER: secret}


def _retell_call(script: CallScript, lead: Lead, call_id: str, end: datetime) -> dict[str, Any]:
    start = end - timedelta(seconds=script.duration_seconds)
    return {
        "call_id": call_id,
        "agent_id": "agent_demo_intake",
        "call_type": "phone_call",
        "call_status": "ended",
        "direction": "outbound",
        "from_number": DEMO_FROM_NUMBER,
        "to_number": lead.phone,
        "start_timestamp": int(start.timestamp() * 1000),
        "end_timestamp": int(end.timestamp() * 1000),
        "duration_ms": script.duration_seconds * 1000,
        "transcript": script.transcript,
        "recording_url": f"https://recordings.example.com/{call_id}.wav",
        "disconnection_reason": script.end_reason,
        "metadata": {"lead_id": lead.id},
    }


def _vapi_report(script: CallScript, lead: Lead, call_id: str, end: datetime) -> dict[str, Any]:
    start = end - timedelta(seconds=script.duration_seconds)
    return {
        "message": {
            "type": "end-of-call-report",
            "timestamp": int(end.timestamp() * 1000),
            "endedReason": script.end_reason,
            "call": {
                "id": call_id,
                "orgId": "org_demo",
                "type": "outboundPhoneCall",
                "status": "ended",
                "metadata": {"lead_id": lead.id},
            },
            "customer": {"number": lead.phone, "name": lead.name},
            "phoneNumber": {"number": DEMO_FROM_NUMBER},
            "startedAt": start.isoformat().replace("+00:00", "Z"),
            "endedAt": end.isoformat().replace("+00:00", "Z"),
            "durationSeconds": float(script.duration_seconds),
            "transcript": script.transcript,
            "recordingUrl": f"https://recordings.example.com/{call_id}.wav",
            "artifact": {"transcript": script.transcript},
            "analysis": {"summary": "", "successEvaluation": "false"},
        }
    }


def call_samples_plan(leads: dict[str, Lead]) -> list[CallSample]:
    """One sample per script; Retell calls send call_ended then call_analyzed for the same call
    (one CallLog, its actions run once), Vapi one end-of-call-report."""
    end = datetime.now(UTC)
    samples = []
    for script in CALL_SCRIPTS:
        lead = leads[script.lead]
        if script.source == RETELL_SOURCE:
            call_id = f"call_{uuid.uuid4().hex[:24]}"
            call = _retell_call(script, lead, call_id, end)
            analyzed = {**call, "call_analysis": {"call_summary": "", "user_sentiment": "Neutral"}}
            bodies = [
                json.dumps({"event": "call_ended", "call": call}).encode(),
                json.dumps({"event": "call_analyzed", "call": analyzed}).encode(),
            ]
        else:
            call_id = str(uuid.uuid4())
            bodies = [json.dumps(_vapi_report(script, lead, call_id, end)).encode()]
        samples.append(CallSample(script=script, call_id=call_id, bodies=bodies))
    return samples


def headers_for(source: Source, body: bytes) -> dict[str, str]:
    secret = source.signing_secrets[0]
    if source.slug == RETELL_SOURCE:
        return retell_headers(secret, body)
    return vapi_headers(secret)


def runs_start(*, organization_id: int) -> list[str]:
    """Start the new-lead workflow for every demo lead, as the API would; the refusals are part
    of the demo (an invalid phone, a missing email). Returns one line per lead."""
    workflow = Workflow.objects.get(organization_id=organization_id, name=NEW_LEAD)
    lines = []
    for name, _, _ in LEADS:
        lead = Lead.objects.get(organization_id=organization_id, name=name)
        try:
            run = run_start(workflow=workflow, lead=lead, started_by=STARTED_BY)
        except RunStartRefused as exc:
            lines.append(f"  {name:<18} refused: {exc}")
        except RunAlreadyOpen as exc:
            lines.append(f"  {name:<18} already has run {exc.run.id} ({exc.run.status})")
        else:
            # This command may not share the platform's broker (`make run` keeps its Redis on a
            # private socket), so the message run_start published may reach no worker. Giving
            # the marker back hands the run to beat's dispatcher, inside the platform; should
            # both messages arrive, the claim lets only one execute the step.
            WorkflowRun.objects.release_dispatch(run_id=run.id)
            lines.append(f"  {name:<18} started run {run.id}")
    return lines


def moving_runs(*, organization_id: int, since: datetime, horizon: datetime) -> int:
    """Runs that will still change before `horizon` without anyone's help."""
    due = Q(next_action_at__lte=horizon) | Q(step_status=StepStatus.EXECUTING)
    return (
        WorkflowRun.objects.filter(organization_id=organization_id, created_at__gte=since, status=RunStatus.ACTIVE)
        .filter(due)
        .count()
    )


def moving_calls(call_ids: Iterable[str]) -> int:
    """Calls not yet routed to their disposition's actions, and actions not yet run."""
    ids = list(call_ids)
    routed = CallLog.objects.filter(provider_call_id__in=ids, routed_at__isnull=False).count()
    pending = ActionExecution.objects.filter(
        call__provider_call_id__in=ids, status=ActionExecutionStatus.PENDING
    ).count()
    return len(ids) - routed + pending


def _steps_line(executions: list[StepExecution]) -> str:
    by_position: dict[int, list[StepExecution]] = {}
    for execution in executions:
        by_position.setdefault(execution.position, []).append(execution)
    parts = []
    for position, attempts in sorted(by_position.items()):
        last = attempts[-1]
        outcome = last.outcome or "executing"
        tries = f" x{len(attempts)}" if len(attempts) > 1 else ""
        parts.append(f"{position} {last.action_type} {outcome}{tries}")
    return ", ".join(parts)


def outcomes_describe(*, organization_id: int, since: datetime, call_ids: list[str]) -> list[str]:
    runs = list(
        WorkflowRun.objects.filter(organization_id=organization_id, created_at__gte=since)
        .select_related("lead", "workflow")
        .order_by("created_at")
    )
    executions: dict[uuid.UUID, list[StepExecution]] = {}
    for execution in StepExecution.objects.filter(run__in=runs).order_by("started_at", "attempt"):
        executions.setdefault(execution.run_id, []).append(execution)
    totals = Counter(f"{run.status}/{run.step_status}" for run in runs)
    lines = ["workflow runs (status/step status): " + ", ".join(f"{k} {n}" for k, n in sorted(totals.items()))]
    for run in runs:
        lines.append(f"  {run.lead.name:<18} {run.workflow.name:<20} {run.status}/{run.step_status} at step")
        lines[-1] += f" {run.current_position}: {_steps_line(executions.get(run.id, [])) or '(not executed yet)'}"
        if run.failure_reason and run.status != RunStatus.COMPLETED:
            lines.append(f"  {'':<18} {run.failure_code}: {run.failure_reason[:100]}")
    calls = list(CallLog.objects.filter(provider_call_id__in=call_ids).select_related("lead").order_by("id"))
    lines.append(f"call logs: {len(calls)}")
    for call in calls:
        lead = call.lead.name if call.lead else "(no lead)"
        disposition = call.disposition or "(not analysed yet)"
        fallback = "  [fallback: AI analysis failed]" if call.ai_analysis_failed else ""
        lines.append(f"  {call.provider:<6} {lead:<18} {call.status:<9} {disposition} ({call.confidence}){fallback}")
    actions = list(ActionExecution.objects.filter(call__in=calls).select_related("call__lead").order_by("id"))
    counts = Counter(action.status for action in actions)
    lines.append("action executions: " + (", ".join(f"{s} {n}" for s, n in sorted(counts.items())) or "none"))
    for action in actions:
        lead = action.call.lead.name if action.call.lead else "(no lead)"
        detail = f"{action.error_code}: {action.error[:90]}" if action.error else action.result[:90]
        lines.append(f"  {lead:<18} {action.action_type:<19} {action.status:<9} {detail}")
    return lines
