"""What a voice provider's call webhook says about a call, read into one shape.

Retell (docs.retellai.com, webhook): {"event": "call_ended" | "call_analyzed", "call": {"call_id",
"agent_id", "call_status", "start_timestamp" (ms), "end_timestamp", "duration_ms", "transcript",
"recording_url", "disconnection_reason", "from_number", "to_number", "direction", "metadata",
"call_analysis"}}. Vapi end-of-call-report (docs.vapi.ai, server events): {"message": {"type",
"call": {"id", "metadata"?, ...}, "endedReason", "transcript" (or "artifact.transcript"),
"recordingUrl" (or "artifact.recordingUrl"), "durationSeconds" or "startedAt"/"endedAt",
"analysis", "customer": {"number"}}}.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from webhooks_app.errors import ErrorCode, ProcessingError
from workflows_app.models import CallProvider, CallStatus


@dataclass(frozen=True)
class CallReport:
    provider: CallProvider
    provider_call_id: str
    status: CallStatus
    direction: str = ""
    from_number: str = ""
    to_number: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    end_reason: str = ""
    transcript: str = ""
    recording_url: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def lead_phone(self) -> str:
        """The far end of the call: the number called on an outbound call, the caller otherwise."""
        return self.to_number if self.direction == "outbound" else self.from_number


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _from_ms(value: Any) -> datetime | None:
    ms = _number(value)
    if ms is None or ms <= 0:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _from_iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


RETELL_STATUSES = {
    "registered": CallStatus.REGISTERED,
    "ongoing": CallStatus.ONGOING,
    "ended": CallStatus.ENDED,
    "error": CallStatus.ERROR,
}


def retell_report(payload: dict[str, Any]) -> CallReport:
    call = payload.get("call")
    if not isinstance(call, dict) or not isinstance(call.get("call_id"), str) or not call["call_id"]:
        raise ProcessingError("Retell payload has no call.call_id", code=ErrorCode.VALIDATION)
    if payload.get("event") == "call_analyzed":
        status = CallStatus.ANALYZED
    else:
        status = RETELL_STATUSES.get(str(call.get("call_status") or ""), CallStatus.ENDED)
    started, ended = _from_ms(call.get("start_timestamp")), _from_ms(call.get("end_timestamp"))
    duration_ms = _number(call.get("duration_ms"))
    duration = duration_ms / 1000 if duration_ms is not None else None
    if duration is None and started and ended:
        duration = (ended - started).total_seconds()
    return CallReport(
        provider=CallProvider.RETELL,
        provider_call_id=call["call_id"][:200],
        status=status,
        direction=_text(call.get("direction"), 20),
        from_number=_text(call.get("from_number"), 32),
        to_number=_text(call.get("to_number"), 32),
        started_at=started,
        ended_at=ended,
        duration_seconds=duration,
        end_reason=_text(call.get("disconnection_reason"), 100),
        transcript=_text(call.get("transcript"), 1_000_000),
        recording_url=_text(call.get("recording_url"), 2000),
        metadata=_obj(call.get("metadata")),
    )


def vapi_report(payload: dict[str, Any]) -> CallReport:
    message = _obj(payload.get("message"))
    call = _obj(message.get("call"))
    if not isinstance(call.get("id"), str) or not call["id"]:
        raise ProcessingError("Vapi payload has no message.call.id", code=ErrorCode.VALIDATION)
    artifact = _obj(message.get("artifact"))
    started = _from_iso(message.get("startedAt") or call.get("startedAt"))
    ended = _from_iso(message.get("endedAt") or call.get("endedAt"))
    duration = _number(message.get("durationSeconds"))
    if duration is None and started and ended:
        duration = (ended - started).total_seconds()
    customer = _obj(message.get("customer")) or _obj(call.get("customer"))
    phone = _obj(message.get("phoneNumber")) or _obj(call.get("phoneNumber"))
    # Vapi's call types: outboundPhoneCall, inboundPhoneCall, webCall.
    call_type = str(call.get("type") or "")
    direction = "outbound" if call_type.startswith("outbound") else "inbound" if call_type.startswith("inbound") else ""
    customer_number = _text(customer.get("number"), 32)
    own_number = _text(phone.get("number"), 32)
    return CallReport(
        provider=CallProvider.VAPI,
        provider_call_id=call["id"][:200],
        status=CallStatus.ENDED,
        # The customer is the lead whichever way the call went.
        direction=direction or "outbound",
        from_number=customer_number if direction == "inbound" else own_number,
        to_number=own_number if direction == "inbound" else customer_number,
        started_at=started,
        ended_at=ended,
        duration_seconds=duration,
        end_reason=_text(message.get("endedReason"), 100),
        transcript=_text(message.get("transcript") or artifact.get("transcript"), 1_000_000),
        recording_url=_text(message.get("recordingUrl") or artifact.get("recordingUrl"), 2000),
        metadata={**_obj(call.get("metadata")), **_obj(message.get("metadata"))},
    )
