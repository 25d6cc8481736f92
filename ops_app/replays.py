"""Replays: retry every event matching a filter, in batches at a bounded rate.

Each event goes through the same act flow as a person's retry (ops_app.acts), so a replay re-runs
only failed items and leaves an audit entry on every event it touched.
"""

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from config.publishing import publish
from ops_app.acts import ActRefused, act_run
from ops_app.acts.events import event_retry_act
from ops_app.models import ApiKey, Replay, ReplayStatus
from webhooks_app.models import (
    EventItem,
    ItemStatus,
    Organization,
    Source,
    WebhookEvent,
)
from webhooks_app.models.events import NEEDS_HUMAN
from webhooks_app.services.operations import RETRYABLE, Actor

logger = logging.getLogger(__name__)

# What a replay retries unless told otherwise: the states a person has to look at.
DEFAULT_STATUSES = tuple(str(s) for s in NEEDS_HUMAN)
REPLAYABLE_STATUSES = tuple(str(s) for s in RETRYABLE)


class ReplayError(Exception):
    """The replay cannot do what was asked in its current state. Safe to show."""


@dataclass(frozen=True)
class ReplayFilter:
    statuses: tuple[str, ...] = DEFAULT_STATUSES
    error_code: str = ""
    source: Source | None = None
    received_after: datetime | None = None
    received_before: datetime | None = None


@dataclass(frozen=True)
class ReplayPreview:
    events: int
    items: int


def replay_matching_events(*, organization_id: int | None, replay_filter: ReplayFilter) -> QuerySet[WebhookEvent]:
    """Events a replay would retry: they match the filter and still have work to re-run (the
    same test event_retry_failed applies: an unfinished item, or no items at all)."""
    unfinished = EventItem.objects.filter(event=OuterRef("pk")).exclude(status=ItemStatus.SUCCEEDED)
    any_item = EventItem.objects.filter(event=OuterRef("pk"))
    events = WebhookEvent.objects.filter(
        Q(Exists(unfinished)) | ~Q(Exists(any_item)), status__in=replay_filter.statuses
    )
    if organization_id is not None:
        events = events.filter(organization_id=organization_id)
    if replay_filter.error_code:
        events = events.filter(last_error_code=replay_filter.error_code)
    if replay_filter.source is not None:
        events = events.filter(source=replay_filter.source)
    if replay_filter.received_after is not None:
        events = events.filter(received_at__gte=replay_filter.received_after)
    if replay_filter.received_before is not None:
        events = events.filter(received_at__lt=replay_filter.received_before)
    return events


def replay_preview(*, organization_id: int | None, replay_filter: ReplayFilter) -> ReplayPreview:
    """The dry run: how many events, and how many of their items, a replay would re-run now."""
    events = replay_matching_events(organization_id=organization_id, replay_filter=replay_filter)
    items = EventItem.objects.filter(event__in=events.values("pk")).exclude(status=ItemStatus.SUCCEEDED)
    return ReplayPreview(events=events.count(), items=items.count())


def replay_create(
    *,
    organization: Organization | None,
    replay_filter: ReplayFilter,
    requested_by: str,
    api_key: ApiKey | None = None,
) -> Replay:
    """Record the replay and start working it off once the row is committed."""
    preview = replay_preview(organization_id=organization.pk if organization else None, replay_filter=replay_filter)
    replay = Replay.objects.create(
        organization=organization,
        requested_by=requested_by,
        api_key=api_key,
        statuses=list(replay_filter.statuses),
        error_code=replay_filter.error_code,
        source=replay_filter.source,
        received_after=replay_filter.received_after,
        received_before=replay_filter.received_before,
        matched_events=preview.events,
        matched_items=preview.items,
        batch_size=settings.MENDHOOK_REPLAY_BATCH_SIZE,
        events_per_second=settings.MENDHOOK_REPLAY_EVENTS_PER_SECOND,
    )
    transaction.on_commit(lambda: publish("ops_app.tasks.run_replay", str(replay.id)))
    return replay


def replay_cancel(*, replay_id: uuid.UUID) -> Replay:
    if not Replay.objects.cancel(replay_id=replay_id, now=timezone.now()):
        replay = Replay.objects.get(id=replay_id)
        raise ReplayError(f"the replay is already {replay.status}")
    return Replay.objects.get(id=replay_id)


def _filter_of(replay: Replay) -> ReplayFilter:
    return ReplayFilter(
        statuses=tuple(replay.statuses),
        error_code=replay.error_code,
        source=replay.source,
        received_after=replay.received_after,
        received_before=replay.received_before,
    )


def replay_run_batch(*, replay_id: uuid.UUID) -> float | None:
    """Retry the next batch of a replay. Returns how many seconds to wait before the next batch,
    or None when the replay is over (done, cancelled, or being run by another message).

    The batch runs in one transaction holding the replay's row lock: a duplicate message skips
    the replay instead of retrying the same events twice, a worker dying mid-batch rolls the
    batch back whole, and a cancel waits for the batch under way, then stops the next one.
    Retried events are published on commit (by the retry's service), never inside the transaction.
    """
    started = time.monotonic()
    now = timezone.now()
    with transaction.atomic():
        replay = (
            Replay.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("source", "api_key")
            .filter(id=replay_id)
            .first()
        )
        if replay is None or not replay.is_active:
            return None
        if replay.status == ReplayStatus.PENDING:
            replay.status = ReplayStatus.RUNNING
            replay.started_at = now
        events = replay_matching_events(organization_id=replay.organization_id, replay_filter=_filter_of(replay))
        # Only what was there when the replay was asked for; keyset order so no event is seen twice.
        events = events.filter(received_at__lte=replay.created_at)
        if replay.cursor_received_at is not None:
            events = events.filter(
                Q(received_at__gt=replay.cursor_received_at)
                | Q(received_at=replay.cursor_received_at, id__gt=replay.cursor_event_id)
            )
        batch = list(events.order_by("received_at", "id").only("id", "received_at", "status")[: replay.batch_size])
        actor = Actor(label=f"{replay.requested_by} (replay {replay.id})"[:200], via="api")
        for event in batch:
            try:
                act_run(act=event_retry_act(event), target=event, actor=actor, note=f"replay {replay.id}")
                replay.done += 1
            except ActRefused:
                # Someone (or the worker) changed the event after it was matched.
                replay.failed += 1
            replay.cursor_received_at, replay.cursor_event_id = event.received_at, event.id
        if len(batch) < replay.batch_size:
            replay.status = ReplayStatus.COMPLETED
            replay.finished_at = timezone.now()
        replay.save()
    if replay.status == ReplayStatus.COMPLETED:
        return None
    # The rate bounds how fast events are handed to the workers, so a big replay cannot starve
    # fresh webhooks on the same queue.
    return max(0.0, replay.batch_size / replay.events_per_second - (time.monotonic() - started))


def replay_mark_failed(*, replay_id: uuid.UUID, error: str) -> None:
    Replay.objects.filter(id=replay_id, status__in=(ReplayStatus.PENDING, ReplayStatus.RUNNING)).update(
        status=ReplayStatus.FAILED, last_error=error[:2000], finished_at=timezone.now(), updated_at=timezone.now()
    )


# A running replay whose row has not moved for this long lost its next-batch message (a broker
# restart without persistence, a purge): beat hands it a new one.
REPLAY_STALLED_SECONDS = 300


def replays_stalled(*, now: datetime | None = None) -> list[uuid.UUID]:
    """Active replays with no batch for REPLAY_STALLED_SECONDS (and far longer than their own
    pace): their chain of batch messages is broken."""
    now = now or timezone.now()
    candidates = Replay.objects.filter(
        status__in=(ReplayStatus.PENDING, ReplayStatus.RUNNING),
        updated_at__lt=now - timedelta(seconds=REPLAY_STALLED_SECONDS),
    )
    return [
        r.id
        for r in candidates
        # A slow pace (few events per second, big batches) is not a stall.
        if (now - r.updated_at).total_seconds() > 3 * r.batch_size / max(r.events_per_second, 0.001)
    ]
