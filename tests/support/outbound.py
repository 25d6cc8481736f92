"""A customer's notification receiver: a real local HTTP server that verifies each request's
Standard Webhooks signature with the standardwebhooks library, and can be down on demand."""

import json
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.fake_http import FakeService


class Receiver(FakeService):
    """Answers 200 to a correctly signed request (401 otherwise), or `down_status` while down."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self.down_status: int | None = None
        self.retry_after: str | None = None
        self.accepted: list[dict[str, Any]] = []

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.secrets = []
            self.down_status = None
            self.retry_after = None
            self.accepted = []

    def trust(self, *secrets: str) -> None:
        with self.lock:
            self.secrets = list(secrets)

    def down(self, status: int = 503, retry_after: str | None = None) -> None:
        with self.lock:
            self.down_status = status
            self.retry_after = retry_after

    def up(self) -> None:
        with self.lock:
            self.down_status = None

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            down, retry_after, secrets = self.down_status, self.retry_after, list(self.secrets)
        if down is not None:
            return down, {"Retry-After": retry_after} if retry_after else {}, b'{"error": "down"}'
        for secret in secrets:
            try:
                payload = Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            with self.lock:
                self.accepted.append({**payload, "_id": headers["webhook-id"]})
            return 200, {}, b'{"ok": true}'
        return 401, {}, b'{"error": "bad signature"}'

    def verified(self) -> list[dict[str, Any]]:
        """The payloads it accepted (signature verified, answered 200), in arrival order, each
        with its webhook-id under "_id"."""
        with self.lock:
            return list(self.accepted)

    def bodies_json(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests]


def endpoint_listening(organization: Any, receiver: Receiver, **fields: Any) -> Any:
    """An endpoint of `organization` posting to `receiver`, which trusts its new secret."""
    from webhooks_app.models import Endpoint
    from webhooks_app.services.outbound.operations import endpoint_create

    fields.setdefault("event_types", ["booking.created", "booking.approved", "booking.rejected"])
    endpoint = Endpoint(organization=organization, url=f"{receiver.url}/hooks", **fields)
    receiver.trust(endpoint_create(endpoint=endpoint))
    return endpoint
