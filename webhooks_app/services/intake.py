"""Accepting an inbound webhook: validate, derive its identity, store it once."""

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from webhooks_app.models import EventStatus, Source, SourceKind, WebhookEvent
from webhooks_app.services.dispatch import event_publish_new

# Where each provider puts the event type, its own event id and the entity the event is about.
EVENT_TYPE_PATHS: dict[str, Sequence[tuple[str, ...]]] = {
    SourceKind.CLIO: [("type",), ("event_type",)],
    SourceKind.VAPI: [("message", "type"), ("type",)],
    SourceKind.RETELL: [("event",)],
    SourceKind.LLAMAPARSE: [("event_type",), ("event",)],
    SourceKind.GENERIC: [("type",), ("event_type",), ("event",)],
}
EVENT_ID_PATHS: dict[str, Sequence[tuple[str, ...]]] = {
    SourceKind.CLIO: [("id",)],
    SourceKind.VAPI: [],
    SourceKind.RETELL: [],
    SourceKind.LLAMAPARSE: [("event_id",)],
    SourceKind.GENERIC: [("id",), ("event_id",)],
}
ENTITY_PATHS: dict[str, Sequence[tuple[str, ...]]] = {
    SourceKind.CLIO: [("data", "matter_id")],
    SourceKind.VAPI: [("message", "call", "id")],
    SourceKind.RETELL: [("call", "call_id")],
    SourceKind.LLAMAPARSE: [("job_id",)],
    SourceKind.GENERIC: [("entity_id",), ("data", "id")],
}

# Headers kept with the event: what was verified and who sent it; never cookies or auth.
KEPT_HEADERS = ("content-type", "user-agent", "webhook-id", "webhook-timestamp", "webhook-signature")


class PayloadError(Exception):
    """The body is not a JSON object."""


@dataclass(frozen=True)
class Received:
    event: WebhookEvent
    duplicate: bool


def _dig(payload: Mapping[str, Any], paths: Sequence[tuple[str, ...]]) -> str:
    for path in paths:
        node: Any = payload
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, (str, int)) and not isinstance(node, bool) and str(node):
            return str(node)
    return ""


def parse_payload(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadError("body must be a JSON object")
    return payload


def idempotency_key_for(source: Source, body: bytes, payload: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    if lowered.get("webhook-id"):
        return f"wh:{lowered['webhook-id'][:240]}"
    provider_id = _dig(payload, EVENT_ID_PATHS.get(source.kind, []))
    if provider_id:
        return f"id:{provider_id[:240]}"
    return "sha256:" + hashlib.sha256(body).hexdigest()


def event_receive(*, source: Source, body: bytes, payload: dict[str, Any], headers: Mapping[str, str]) -> Received:
    """Store the event once per (source, idempotency key) and publish it after commit.

    The unique constraint, not a prior lookup, decides duplicates, so concurrent deliveries of
    the same event cannot both insert.
    """
    key = idempotency_key_for(source, body, payload, headers)
    kept = {k.lower(): v for k, v in headers.items() if k.lower() in KEPT_HEADERS}
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(
                organization_id=source.organization_id,
                source=source,
                idempotency_key=key,
                event_type=_dig(payload, EVENT_TYPE_PATHS.get(source.kind, [])) or "unknown",
                entity_id=_dig(payload, ENTITY_PATHS.get(source.kind, []))[:200],
                payload=payload,
                headers=kept,
                max_attempts=source.max_attempts,
                # Published right after commit; event_publish_new sets it back to `received`
                # if the broker refuses, and the sweeper takes it from there.
                status=EventStatus.QUEUED,
            )
            # The row is its own outbox: a publish that never happens is caught by beat.
            transaction.on_commit(lambda: event_publish_new(event_id=event.id))
    except IntegrityError:
        existing = WebhookEvent.objects.filter(source=source, idempotency_key=key).first()
        if existing is None:  # the conflicting row was not a duplicate of ours
            raise
        return Received(event=existing, duplicate=True)
    return Received(event=event, duplicate=False)
