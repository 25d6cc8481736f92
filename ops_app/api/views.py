"""The read endpoints and the acts on one event. One view per operation; each validates its input
with an input serializer and answers through an output serializer."""

import uuid
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ops_app.acts import ActRefused, act_run
from ops_app.acts.events import MARK_RESOLVED, RETRY_FAILED_ITEMS, event_retry_act
from ops_app.api.authentication import Scope, scope_of
from ops_app.api.exceptions import Conflict, errors
from ops_app.api.pagination import EventCursorPagination
from ops_app.api.permissions import VIEW_EVENTS
from ops_app.api.serializers import (
    FAILURE_STATUSES,
    ActResultSerializer,
    BreakersSerializer,
    DeadLettersPageSerializer,
    DeliveryStatsQuery,
    DeliveryStatsSerializer,
    EventListQuery,
    EventSerializer,
    FailuresPageSerializer,
    FailuresQuery,
    NoteInput,
    QueueHealthSerializer,
    ResolveInput,
)
from ops_app.models import AuditEntry
from ops_app.queue_health import queue_health
from ops_app.stats import delivery_stats_cached
from webhooks_app.breakers import breaker_states
from webhooks_app.models import EventStatus, ProcessingAttempt, Source, WebhookEvent

EVENT_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The event's id.")


class ApiView(APIView):
    # Reads by default; acts override both.
    throttle_scope = "read"
    required_permission = VIEW_EVENTS


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:  # type: ignore[type-arg]
    # A plain dict, not the QueryDict: DRF reads an empty form value as "not given", while the
    # schema (and a client) treat ?source= as a value, which must be valid or a 400.
    query = serializer_class(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return dict(query.validated_data)


def _last_task_id() -> Subquery:
    return Subquery(ProcessingAttempt.objects.filter(event=OuterRef("pk")).order_by("-number").values("task_id")[:1])


def _event_or_404(scope: Scope, raw_id: str) -> WebhookEvent:
    """Another organization's event is 'not found', exactly like one that does not exist, so a
    key cannot even learn that an id is taken."""
    try:
        event_id = uuid.UUID(raw_id)
    except ValueError as exc:
        raise NotFound("No such event.") from exc
    event = scope.events().filter(id=event_id).first()
    if event is None:
        raise NotFound("No such event.")
    return event


def _filtered(events: QuerySet[WebhookEvent], query: dict[str, Any]) -> QuerySet[WebhookEvent]:
    if "error_code" in query:
        events = events.filter(last_error_code=query["error_code"])
    if "source" in query:
        events = events.filter(source__slug=query["source"])
    return events.select_related("source").annotate(job_id=_last_task_id())


class QueueHealthView(ApiView):
    @extend_schema(
        operation_id="queue_health",
        summary="Queue health right now",
        description="Per queue: waiting (broker), active and reserved (workers, asked with a 1 s "
        "timeout and cached 5 s), scheduled retries and 24 h failures (database). `healthy` is "
        "false with `reasons` when a worker, queue, failure rate or wait is out of bounds.",
        responses={200: QueueHealthSerializer, **errors()},
    )
    def get(self, request: Request) -> Response:
        health = queue_health(organization_id=scope_of(request).organization_id)
        return Response(QueueHealthSerializer(health).data)


class DeliveryStatsView(ApiView):
    @extend_schema(
        operation_id="delivery_stats",
        summary="Delivery statistics over a time range",
        parameters=[DeliveryStatsQuery],
        responses={200: DeliveryStatsSerializer, **errors(400)},
    )
    def get(self, request: Request) -> Response:
        query = _query(DeliveryStatsQuery, request)
        stats = delivery_stats_cached(organization_id=scope_of(request).organization_id, time_range=query["range"])
        return Response(DeliveryStatsSerializer(stats).data)


class FailuresView(ApiView):
    @extend_schema(
        operation_id="failures_list",
        summary="Recent failures, newest first",
        description="Events whose last attempt failed: " + ", ".join(FAILURE_STATUSES) + ".",
        parameters=[FailuresQuery],
        responses={200: FailuresPageSerializer, **errors(400)},
    )
    def get(self, request: Request) -> Response:
        query = _query(FailuresQuery, request)
        statuses = [query["status"]] if "status" in query else list(FAILURE_STATUSES)
        events = _filtered(scope_of(request).events().filter(status__in=statuses), query)
        paginator = EventCursorPagination()
        page = paginator.paginate_queryset(events, request, view=self)
        data = {"failures": page, "count": len(page), **paginator.links()}
        return Response(FailuresPageSerializer(data).data)


class DeadLettersView(ApiView):
    @extend_schema(
        operation_id="dead_letters_list",
        summary="Dead letters with their payloads, newest first",
        parameters=[EventListQuery],
        responses={200: DeadLettersPageSerializer, **errors(400)},
    )
    def get(self, request: Request) -> Response:
        query = _query(EventListQuery, request)
        events = _filtered(scope_of(request).events().filter(status=EventStatus.DEAD_LETTER), query)
        paginator = EventCursorPagination()
        page = paginator.paginate_queryset(events, request, view=self)
        data = {"deadLetters": page, "count": len(page), **paginator.links()}
        return Response(DeadLettersPageSerializer(data).data)


class EventDetailView(ApiView):
    @extend_schema(
        operation_id="event_retrieve",
        summary="One event with its items, delivery log and audit trail",
        parameters=[EVENT_ID],
        responses={200: EventSerializer, **errors(404)},
    )
    def get(self, request: Request, id: str) -> Response:
        event = _event_or_404(scope_of(request), id)
        event = (
            WebhookEvent.objects.filter(id=event.id)
            .select_related("source")
            .annotate(job_id=_last_task_id())
            .prefetch_related("items", "attempt_log")
            .get()
        )
        event.audit_trail = list(AuditEntry.objects.for_target(event).order_by("created_at", "id"))  # type: ignore[attr-defined]
        return Response(EventSerializer(event).data)


class EventRetryView(ApiView):
    throttle_scope = "write"
    # The act's own permission: a session user may do here what the admin lets them do.
    required_permission = RETRY_FAILED_ITEMS.permission

    @extend_schema(
        operation_id="event_retry",
        summary="Retry the failed items of an event (a dead letter is requeued)",
        description="Items that succeeded are never run again. Audited like the admin action.",
        parameters=[EVENT_ID],
        request=NoteInput,
        responses={202: ActResultSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, id: str) -> Response:
        scope = scope_of(request)
        event = _event_or_404(scope, id)
        body = NoteInput(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            act = event_retry_act(event)
            action = act_run(act=act, target=event, actor=scope.actor, note=body.validated_data.get("note", ""))
        except ActRefused as exc:
            raise Conflict(str(exc), code="nothing_to_retry") from exc
        event.refresh_from_db(fields=["status"])
        result = {"success": True, "message": "Failed items queued for a retry.", "event": event, "action": action}
        return Response(ActResultSerializer(result).data, status=status.HTTP_202_ACCEPTED)


class EventResolveView(ApiView):
    throttle_scope = "write"
    required_permission = MARK_RESOLVED.permission

    @extend_schema(
        operation_id="event_resolve",
        summary="Mark an event manually resolved, with a note",
        parameters=[EVENT_ID],
        request=ResolveInput,
        responses={200: ActResultSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, id: str) -> Response:
        scope = scope_of(request)
        event = _event_or_404(scope, id)
        body = ResolveInput(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            action = act_run(act=MARK_RESOLVED, target=event, actor=scope.actor, note=body.validated_data["note"])
        except ActRefused as exc:
            raise Conflict(str(exc), code="not_resolvable") from exc
        event.refresh_from_db(fields=["status"])
        result = {"success": True, "message": "Event marked manually resolved.", "event": event, "action": action}
        return Response(ActResultSerializer(result).data)


class BreakersView(ApiView):
    @extend_schema(
        operation_id="breakers_list",
        summary="Circuit breakers and their state",
        description="Breakers are global (one per external system, shared by every worker). A staff "
        "user sees all of them; an API key sees its own organization's connections "
        "(`clio:<source slug>`) and the shared providers, never another organization's.",
        responses={200: BreakersSerializer, **errors()},
    )
    def get(self, request: Request) -> Response:
        states = breaker_states()
        organization_id = scope_of(request).organization_id
        if organization_id is not None:
            own = {
                f"clio:{slug}"
                for slug in Source.objects.filter(organization_id=organization_id).values_list("slug", flat=True)
            }
            states = [s for s in states if ":" not in s.name or s.name in own]
        return Response(BreakersSerializer({"breakers": states}).data)
