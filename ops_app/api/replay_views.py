"""Replays over the API: preview (dry run), start, poll, cancel. The work itself is in
ops_app.replays and the Celery task ops_app.tasks.run_replay."""

import uuid
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from ops_app.api.authentication import Scope, scope_of
from ops_app.api.exceptions import Conflict, errors
from ops_app.api.permissions import RETRY_EVENTS
from ops_app.api.views import ApiView
from ops_app.models import Replay, ReplayStatus
from ops_app.replays import (
    DEFAULT_STATUSES,
    REPLAYABLE_STATUSES,
    ReplayError,
    ReplayFilter,
    replay_cancel,
    replay_create,
    replay_preview,
)
from webhooks_app.models import Source

# --- Serializers -----------------------------------------------------------------------------


class ReplayFilterInput(serializers.Serializer):  # type: ignore[type-arg]
    status = serializers.ListField(
        child=serializers.ChoiceField(choices=list(REPLAYABLE_STATUSES)),
        allow_empty=False,
        max_length=len(REPLAYABLE_STATUSES),
        default=list(DEFAULT_STATUSES),
        help_text="Event statuses to retry; by default " + ", ".join(DEFAULT_STATUSES) + ".",
    )
    error_code = serializers.CharField(max_length=50, required=False, help_text="The event's last error code.")
    # DRF lifts declared fields off the class, so naming one "source" is safe; mypy cannot tell.
    source = serializers.SlugField(max_length=100, required=False, help_text="A source's slug.")  # type: ignore[assignment]
    received_after = serializers.DateTimeField(required=False, help_text="Inclusive.")
    received_before = serializers.DateTimeField(required=False, help_text="Exclusive.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        after, before = attrs.get("received_after"), attrs.get("received_before")
        if after is not None and before is not None and after >= before:
            raise ValidationError({"received_before": ["Must be later than received_after."]})
        return attrs


class ReplayInput(serializers.Serializer):  # type: ignore[type-arg]
    filter = ReplayFilterInput(required=False, help_text="Which events to retry; every part is optional.")
    dry_run = serializers.BooleanField(
        default=False, help_text="Only count what would be retried; nothing changes and no replay is recorded."
    )


class ReplayFilterOutput(serializers.Serializer):  # type: ignore[type-arg]
    status = serializers.ListField(child=serializers.CharField(), source="statuses")
    errorCode = serializers.CharField(source="error_code", allow_null=True)
    source = serializers.CharField(source="source.slug", allow_null=True)  # type: ignore[assignment]
    receivedAfter = serializers.DateTimeField(source="received_after", allow_null=True)
    receivedBefore = serializers.DateTimeField(source="received_before", allow_null=True)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        data["errorCode"] = data["errorCode"] or None
        return data


class ReplayPreviewSerializer(serializers.Serializer):  # type: ignore[type-arg]
    dryRun = serializers.BooleanField()
    matched = serializers.IntegerField(help_text="Events that would be retried now.")
    matchedItems = serializers.IntegerField(
        help_text="Their failed or pending items, the only ones re-run (an event without items is re-run whole)."
    )
    filter = ReplayFilterOutput()


class ReplaySerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=ReplayStatus.choices)
    filter = ReplayFilterOutput(source="*")
    matched = serializers.IntegerField(source="matched_events", help_text="Events matching when requested.")
    matchedItems = serializers.IntegerField(source="matched_items")
    done = serializers.IntegerField(help_text="Events queued for a retry so far.")
    failed = serializers.IntegerField(help_text="Events that had nothing left to retry when the replay reached them.")
    batchSize = serializers.IntegerField(source="batch_size")
    eventsPerSecond = serializers.FloatField(source="events_per_second", help_text="The rate bound.")
    requestedBy = serializers.CharField(source="requested_by")
    lastError = serializers.CharField(source="last_error")
    createdAt = serializers.DateTimeField(source="created_at")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)


# --- Views -----------------------------------------------------------------------------------

REPLAY_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The replay's id.")


def _replays(scope: Scope) -> QuerySet[Replay]:
    replays = Replay.objects.select_related("source")
    return replays if scope.organization is None else replays.filter(organization=scope.organization)


def _replay_or_404(scope: Scope, raw_id: str) -> Replay:
    try:
        replay_id = uuid.UUID(raw_id)
    except ValueError as exc:
        raise NotFound("No such replay.") from exc
    replay = _replays(scope).filter(id=replay_id).first()
    if replay is None:
        raise NotFound("No such replay.")
    return replay


def _source(scope: Scope, slug: str | None) -> Source | None:
    if slug is None:
        return None
    sources = Source.objects.filter(slug=slug)
    if scope.organization is not None:
        sources = sources.filter(organization=scope.organization)
    source = sources.first()
    if source is None:
        # The same answer for another organization's source as for none at all.
        raise ValidationError({"filter": {"source": ["Unknown source."]}})
    return source


class ReplayCreateView(ApiView):
    throttle_scope = "write"
    required_permission = RETRY_EVENTS

    @extend_schema(
        operation_id="replay_create",
        summary="Retry every event matching a filter, in the background at a bounded rate",
        description="With dry_run, only answers how many events and items would be retried (200). "
        "Otherwise records a replay and answers 202 with it; poll GET /api/v1/replays/{id}. Only "
        "events received before the request are part of a replay.",
        request=ReplayInput,
        responses={200: ReplayPreviewSerializer, 202: ReplaySerializer, **errors(400)},
    )
    def post(self, request: Request) -> Response:
        scope = scope_of(request)
        body = ReplayInput(data=request.data)
        body.is_valid(raise_exception=True)
        given = body.validated_data.get("filter") or {"status": list(DEFAULT_STATUSES)}
        replay_filter = ReplayFilter(
            statuses=tuple(dict.fromkeys(given["status"])),
            error_code=given.get("error_code", ""),
            source=_source(scope, given.get("source")),
            received_after=given.get("received_after"),
            received_before=given.get("received_before"),
        )
        if body.validated_data["dry_run"]:
            preview = replay_preview(organization_id=scope.organization_id, replay_filter=replay_filter)
            data = {"dryRun": True, "matched": preview.events, "matchedItems": preview.items, "filter": replay_filter}
            return Response(ReplayPreviewSerializer(data).data)
        replay = replay_create(
            organization=scope.organization,
            replay_filter=replay_filter,
            requested_by=scope.actor.label,
            api_key=scope.api_key,
        )
        response = Response(ReplaySerializer(replay).data, status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/replays/{replay.id}"
        return response


class ReplayDetailView(ApiView):
    @extend_schema(
        operation_id="replay_retrieve",
        summary="A replay's progress",
        parameters=[REPLAY_ID],
        responses={200: ReplaySerializer, **errors(404)},
    )
    def get(self, request: Request, id: str) -> Response:
        return Response(ReplaySerializer(_replay_or_404(scope_of(request), id)).data)


class ReplayCancelView(ApiView):
    throttle_scope = "write"
    required_permission = RETRY_EVENTS

    @extend_schema(
        operation_id="replay_cancel",
        summary="Cancel a replay",
        description="The batch under way (if any) finishes; no further batch starts.",
        parameters=[REPLAY_ID],
        request=None,
        responses={200: ReplaySerializer, **errors(404, 409)},
    )
    def post(self, request: Request, id: str) -> Response:
        replay = _replay_or_404(scope_of(request), id)
        try:
            replay = replay_cancel(replay_id=replay.id)
        except ReplayError as exc:
            raise Conflict(str(exc), code="replay_finished") from exc
        return Response(ReplaySerializer(replay).data)
