"""Signing requests the way each provider would."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from webhooks_app.signatures import sign_hmac_sha256


def standard_headers(
    secret: str, body: bytes, *, msg_id: str | None = None, timestamp: float | None = None
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = datetime.fromtimestamp(timestamp if timestamp is not None else time.time(), tz=UTC)
    signature = Webhook(secret).sign(msg_id, ts, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(ts.timestamp())),
        "webhook-signature": signature,
    }


def hmac_headers(secret: str, body: bytes, header: str = "X-Signature") -> dict[str, str]:
    return {header: sign_hmac_sha256(secret, body)}


def matter_payload(
    matter_id: int | str = 1001, stage: str = "consultation", location: str = "naples", **extra: Any
) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "matter.stage_changed",
        "data": {"matter_id": matter_id, "stage": stage, "location": location, **extra},
    }


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def standard_headers_for_bytes(
    secret: str, body: bytes, *, msg_id: str | None = None, timestamp: str | None = None
) -> dict[str, str]:
    """Standard Webhooks headers over any bytes, as a sender that signs bytes (not text) would:
    the library's sign() takes text, so it cannot sign a body that is not UTF-8. `timestamp` is
    sent and signed as given, so it may be anything a sender could put there."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = timestamp if timestamp is not None else str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def retell_headers(api_key: str, body: bytes, *, timestamp_ms: int | None = None) -> dict[str, str]:
    """x-retell-signature as retell-sdk's sign() makes it: v=<ms>,d=<hex HMAC of body + ms>."""
    stamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
    digest = hmac.new(api_key.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()
    return {"x-retell-signature": f"v={stamp},d={digest}"}


def retell_payload(call_id: str, event: str = "call_ended", **call: Any) -> dict[str, Any]:
    """A Retell call webhook of `event` with a realistic call object; `call` overrides fields."""
    body: dict[str, Any] = {
        "call_id": call_id,
        "agent_id": "agent_1234",
        "call_type": "phone_call",
        "call_status": "ended",
        "direction": "outbound",
        "from_number": "+14155550100",
        "to_number": "+14155552671",
        "start_timestamp": 1_767_000_000_000,
        "end_timestamp": 1_767_000_095_000,
        "duration_ms": 95_000,
        "transcript": "Agent: Hi, is this Dana?\nUser: Yes. Send me the pricing, call me back tomorrow.",
        "recording_url": "https://example.com/recordings/1.wav",
        "disconnection_reason": "user_hangup",
        "metadata": {},
        **call,
    }
    if event == "call_analyzed":
        body.setdefault("call_analysis", {"call_summary": "Interested.", "user_sentiment": "Positive"})
    return {"event": event, "call": body}


def vapi_payload(call_id: str, **message: Any) -> dict[str, Any]:
    """A Vapi end-of-call-report for an outbound call; `message` overrides fields."""
    return {
        "message": {
            "type": "end-of-call-report",
            "endedReason": "customer-ended-call",
            "call": {"id": call_id, "type": "outboundPhoneCall", "orgId": "org_1"},
            "customer": {"number": "+14155552671"},
            "phoneNumber": {"number": "+14155550100"},
            "startedAt": "2026-01-01T10:00:00.000Z",
            "endedAt": "2026-01-01T10:00:12.000Z",
            "durationSeconds": 12.0,
            "transcript": "AI: Hello?\nUser: Wrong number.",
            "recordingUrl": "https://example.com/recordings/2.wav",
            "analysis": {"summary": "Wrong number.", "successEvaluation": "false"},
            **message,
        }
    }
