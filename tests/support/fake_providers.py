"""Fake voice and SMS providers (Retell-style calls, Twilio-style messages) as real local HTTP
servers, with fault injection (fake_http.Fault). Like the real providers, each dedupes by the
Idempotency-Key header: a request repeated with the same key answers with the first one's
result and creates nothing."""

import base64
import json
import threading
from typing import Any
from urllib.parse import parse_qs

from tests.support.fake_http import FakeService


class _Deduping(FakeService):
    def __init__(self) -> None:
        super().__init__()
        self.created: dict[str, dict[str, Any]] = {}  # by idempotency key
        self.creations = 0
        # hold_next: the next creation is made, then its response waits for the gate (a worker
        # killed while its provider request is open).
        self.gate = threading.Event()
        self.gate.set()
        self.hold_next = False
        self.held = threading.Event()

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.created.clear()
            self.creations = 0
            self.hold_next = False
        self.gate.set()
        self.held.clear()

    def keys(self) -> list[str]:
        with self.lock:
            return [r["headers"].get("idempotency-key", "") for r in self.requests]

    def _create(self, key: str, make: Any) -> tuple[dict[str, Any], bool]:
        with self.lock:
            existing = self.created.get(key)
            if existing is not None:
                return existing, False
            self.creations += 1
            made: dict[str, Any] = make(self.creations)
            self.created[key] = made
            hold, self.hold_next = self.hold_next, False
        if hold:
            self.held.set()
            self.gate.wait(timeout=60)
        return made, True


class FakeRetell(_Deduping):
    """POST /v2/create-phone-call with a Bearer key; answers {"call_id": ...}."""

    api_key = "retell-test-key"

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if method != "POST" or path != "/v2/create-phone-call":
            return 404, {}, b'{"error": "not found"}'
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {}, b'{"error": "unauthorized"}'
        data = json.loads(body)
        call, _ = self._create(
            headers.get("idempotency-key", ""),
            lambda n: {"call_id": f"call_{n:04d}", "to_number": data["to_number"], "metadata": data.get("metadata")},
        )
        return 201, {}, json.dumps({"call_id": call["call_id"], "call_status": "registered"}).encode()

    def calls(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.created.values())


class FakeTwilio(_Deduping):
    """POST /2010-04-01/Accounts/{sid}/Messages.json, form-encoded, basic auth sid:token."""

    account_sid = "ACtest"
    auth_token = "twilio-test-token"

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if method != "POST" or path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return 404, {}, b'{"error": "not found"}'
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if headers.get("authorization") != f"Basic {expected}":
            return 401, {}, b'{"error": "unauthorized"}'
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        message, _ = self._create(
            headers.get("idempotency-key", ""),
            lambda n: {"sid": f"SM{n:032d}", "to": form["To"], "from": form["From"], "body": form["Body"]},
        )
        return 201, {}, json.dumps({"sid": message["sid"], "status": "queued"}).encode()

    def messages(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.created.values())


def provider_env(retell: FakeRetell, twilio: FakeTwilio) -> dict[str, str]:
    """Settings (as environment variables) that point the workflow connectors at the fakes."""
    return {
        "RETELL_BASE_URL": retell.url,
        "RETELL_API_KEY": retell.api_key,
        "TWILIO_BASE_URL": twilio.url,
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_FROM_NUMBER": "+14155550100",
        "RETELL_FROM_NUMBER": "+14155550100",
    }
