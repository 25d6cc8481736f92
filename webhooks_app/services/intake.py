"""Accepting an inbound webhook: validate, derive its identity, store it once."""

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DataError, IntegrityError, transaction

from webhooks_app.errors import ErrorCode
from webhooks_app.json_bodies import UNSTORABLE, payload_storable, text_storable
from webhooks_app.models import EventStatus, Source, SourceKind, WebhookEvent
from webhooks_app.reporting import report_failure
from webhooks_app.services.publisher import event_publish_soon

logger = logging.getLogger(__name__)

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
# Providers that send no event id but some event types once per call: for those the key is the
# event type and the call id together (Retell: event + call_id), so a redelivery is a duplicate
# while call_ended and call_analyzed of one call stay two events. Types sent many times per call
# (Vapi status-update, Retell transcript_updated) keep the body hash.
EVENT_KEY_PARTS: dict[str, Sequence[Sequence[tuple[str, ...]]]] = {
    SourceKind.RETELL: [[("event",)], [("call", "call_id")]],
    SourceKind.VAPI: [[("message", "type")], [("message", "call", "id")]],
}
ONCE_PER_CALL_EVENTS: dict[str, frozenset[str]] = {
    SourceKind.RETELL: frozenset({"call_started", "call_ended", "call_analyzed"}),
    SourceKind.VAPI: frozenset({"end-of-call-report"}),
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


# Ids up to this long are kept verbatim in the key (existing keys stay as they were); longer
# ones are hashed whole, so two ids sharing a long prefix stay two events.
MAX_VERBATIM_ID = 240
HASHED = "sha256:"


class UnstorableEvent(Exception):
    """PostgreSQL refused the event although the body passed every check. Recorded as an error;
    the sender gets a 422 naming the problem instead of a 500 it would retry forever."""


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


def _id_key(prefix: str, raw_id: str) -> str:
    """One key per id, never one key for two ids: a verbatim id never starts with "sha256:", so
    it cannot pose as a hashed one, and what PostgreSQL cannot store (NUL) is hashed too."""
    if len(raw_id) <= MAX_VERBATIM_ID and not raw_id.startswith(HASHED) and not UNSTORABLE.search(raw_id):
        return prefix + raw_id
    return prefix + HASHED + hashlib.sha256(raw_id.encode("utf-8", "surrogatepass")).hexdigest()


def idempotency_key_for(source: Source, body: bytes, payload: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    """From the payload as sent (before payload_storable), so the key sees the ids as sent."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if lowered.get("webhook-id"):
        return _id_key("wh:", lowered["webhook-id"])
    provider_id = _dig(payload, EVENT_ID_PATHS.get(source.kind, []))
    if provider_id:
        return _id_key("id:", provider_id)
    parts = [_dig(payload, paths) for paths in EVENT_KEY_PARTS.get(source.kind, [])]
    if parts and all(parts) and parts[0] in ONCE_PER_CALL_EVENTS.get(source.kind, frozenset()):
        return _id_key("ev:", ":".join(parts))
    return HASHED + hashlib.sha256(body).hexdigest()


def event_receive(
    *, source: Source, body: bytes, text: str, payload: dict[str, Any], headers: Mapping[str, str]
) -> Received:
    """Store the event once per (source, idempotency key) and publish it soon after commit.

    The unique constraint, not a prior lookup, decides duplicates, so concurrent deliveries of
    the same event cannot both insert. `payload` is made storable in place; the raw body is kept
    beside it, so nothing the sender signed is lost.
    """
    key = idempotency_key_for(source, body, payload, headers)
    payload_storable(payload, text)
    kept = {k.lower(): text_storable(v) for k, v in headers.items() if k.lower() in KEPT_HEADERS}
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(
                organization_id=source.organization_id,
                source=source,
                idempotency_key=key,
                # Cut to their columns: they route and label; the payload keeps them whole.
                event_type=_dig(payload, EVENT_TYPE_PATHS.get(source.kind, []))[:100] or "unknown",
                entity_id=_dig(payload, ENTITY_PATHS.get(source.kind, []))[:200],
                payload=payload,
                raw_body=body,
                headers=kept,
                max_attempts=source.max_attempts,
                # Published right after commit; event_publish_new sets it back to `received`
                # if the broker refuses, and the sweeper takes it from there.
                status=EventStatus.QUEUED,
            )
            # The row is its own outbox: a publish that never happens is caught by beat. The
            # publish runs on this process's publisher thread, so the answer does not wait on
            # the broker (services/publisher.py).
            transaction.on_commit(lambda: event_publish_soon(event_id=event.id))
    except IntegrityError:
        existing = WebhookEvent.objects.filter(source=source, idempotency_key=key).first()
        if existing is None:  # the conflicting row was not a duplicate of ours
            raise
        return Received(event=existing, duplicate=True)
    except DataError as exc:
        report_failure(
            logger,
            "intake could not store an event from source %s: %s",
            source.slug,
            exc,
            function="webhooks_app.services.intake.event_receive",
            action="intake",
            error_code=ErrorCode.VALIDATION,
            organization_id=source.organization_id,
        )
        raise UnstorableEvent(f"the database cannot store this payload: {str(exc).splitlines()[0]}") from None
    return Received(event=event, duplicate=False)
