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
