"""Signing requests the way each provider would."""

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
