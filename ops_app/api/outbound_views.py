"""Outbound notifications over the API: endpoints (the signing secret shown once, on create and
rotate), their health stats, messages with their deliveries and attempts, and the acts (retry,
recover since a time, enable, disable), which run through the same act flow as the admin."""

import uuid
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from ops_app.acts import ActRefused, act_run
from ops_app.acts.outbound import DISABLE_ENDPOINT, ENABLE_ENDPOINT, RECOVER_ENDPOINT, RETRY_DELIVERY, RETRY_MESSAGE
from ops_app.api.authentication import Scope, scope_of
from ops_app.api.exceptions import Conflict, errors
from ops_app.api.views import ApiView
from ops_app.outbound_stats import DEFAULT_RANGE, RANGES, endpoint_health
from webhooks_app.models import Delivery, Endpoint, OutboundMessage
from webhooks_app.models.outbound import retry_schedule_check
from webhooks_app.services.outbound.operations import endpoint_create, endpoint_recover_plan, endpoint_secret_rotate
from webhooks_app.services.outbound.registry import event_types_known
from webhooks_app.services.outbound.subscriptions import subscriptions_forget

VIEW_ENDPOINTS = "webhooks_app.view_endpoint"
ADD_ENDPOINTS = "webhooks_app.add_endpoint"
CHANGE_ENDPOINTS = "webhooks_app.change_endpoint"
ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The object's id.")
MAX_MESSAGES = 100

# --- Serializers -----------------------------------------------------------------------------


def _event_types_valid(value: list[str]) -> None:
    unknown = sorted(set(value) - set(event_types_known()))
    if unknown:
        raise ValidationError(f"unknown event type(s): {', '.join(unknown)}; known: {', '.join(event_types_known())}")


def _schedule_valid(value: Any) -> None:
    try:
        retry_schedule_check(value)
    except DjangoValidationError as exc:
        raise ValidationError(exc.messages[0]) from exc


class EndpointInput(serializers.Serializer):  # type: ignore[type-arg]
    url = serializers.URLField(max_length=2000)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=100), allow_empty=False, validators=[_event_types_valid]
    )
    headers = serializers.DictField(
        child=serializers.CharField(max_length=1000), required=False, help_text="Extra request headers (write-only)."
    )
    max_per_second = serializers.IntegerField(min_value=1, max_value=10_000, required=False, allow_null=True)
    retry_schedule = serializers.JSONField(
        required=False, validators=[_schedule_valid], help_text="Delay in seconds before each attempt."
    )


class EndpointPatch(EndpointInput):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, partial=True, **kwargs)


class EndpointSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.UUIDField()
    url = serializers.URLField()
    description = serializers.CharField()
    eventTypes = serializers.ListField(child=serializers.CharField(), source="event_types")
    headerNames = serializers.SerializerMethodField(help_text="Names only: values may hold credentials.")
    enabled = serializers.BooleanField()
    disabledReason = serializers.CharField(source="disabled_reason")
    disabledNote = serializers.CharField(source="disabled_note")
    disabledAt = serializers.DateTimeField(source="disabled_at", allow_null=True)
    failingSince = serializers.DateTimeField(source="failing_since", allow_null=True)
    maxPerSecond = serializers.IntegerField(source="max_per_second", allow_null=True)
    retrySchedule = serializers.ListField(child=serializers.IntegerField(), source="retry_schedule")
    secretHints = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")

    def get_headerNames(self, obj: Endpoint) -> list[str]:
        return sorted(obj.headers or {})

    def get_secretHints(self, obj: Endpoint) -> list[str]:
        return [entry.hint for entry in obj.signing_secret_list]


class EndpointWithSecretSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="Shown this once: store it now.")


class DeliveryAttemptSerializer(serializers.Serializer):  # type: ignore[type-arg]
    number = serializers.IntegerField()
    startedAt = serializers.DateTimeField(source="started_at")
    succeeded = serializers.BooleanField()
    statusCode = serializers.IntegerField(source="status_code", allow_null=True)
    latencyMs = serializers.IntegerField(source="latency_ms")
    responseExcerpt = serializers.CharField(source="response_excerpt")
    error = serializers.CharField()
    errorCode = serializers.CharField(source="error_code")


class OutboundDeliverySerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.UUIDField()
    endpointId = serializers.UUIDField(source="endpoint_id")
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    nextAttemptAt = serializers.DateTimeField(source="next_attempt_at", allow_null=True)
    lastStatusCode = serializers.IntegerField(source="last_status_code", allow_null=True)
    lastError = serializers.CharField(source="last_error")
    lastErrorCode = serializers.CharField(source="last_error_code")
    attemptLog = DeliveryAttemptSerializer(many=True, source="attempt_log.all")


class OutboundMessageSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.UUIDField()
    webhookId = serializers.CharField(source="webhook_id")
    eventType = serializers.CharField(source="event_type")
    createdAt = serializers.DateTimeField(source="created_at")
    invalidReason = serializers.CharField(source="invalid_reason")


class OutboundMessageDetailSerializer(OutboundMessageSerializer):
    payload = serializers.JSONField()
    deliveries = OutboundDeliverySerializer(many=True, source="deliveries.all")


class MessageListQuery(serializers.Serializer):  # type: ignore[type-arg]
    event_type = serializers.CharField(max_length=100, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=MAX_MESSAGES, default=20)
    before = serializers.DateTimeField(required=False, help_text="Only messages created before this (paging).")


class MessagesPageSerializer(serializers.Serializer):  # type: ignore[type-arg]
    messages = OutboundMessageSerializer(many=True)
    count = serializers.IntegerField()


class NoteBody(serializers.Serializer):  # type: ignore[type-arg]
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class DisableBody(serializers.Serializer):  # type: ignore[type-arg]
    note = serializers.CharField(max_length=2000, help_text="Required: why (audited).")


class RecoverBody(serializers.Serializer):  # type: ignore[type-arg]
    since = serializers.DateTimeField(help_text="Resend what failed (or was missed) since then.")
    dry_run = serializers.BooleanField(default=False, help_text="Only count; nothing changes.")
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class RecoverResultSerializer(serializers.Serializer):  # type: ignore[type-arg]
    dryRun = serializers.BooleanField()
    failed = serializers.IntegerField(help_text="Failed or cancelled deliveries since then.")
    missed = serializers.IntegerField(help_text="Messages the endpoint never got (it was disabled).")
    total = serializers.IntegerField()


class ActDoneSerializer(serializers.Serializer):  # type: ignore[type-arg]
    success = serializers.BooleanField()
    statusBefore = serializers.CharField(source="status_before")
    statusAfter = serializers.CharField(source="status_after")
    auditId = serializers.IntegerField(source="pk")


class ErrorPatternSerializer(serializers.Serializer):  # type: ignore[type-arg]
    statusCode = serializers.IntegerField(source="status_code", allow_null=True)
    errorCode = serializers.CharField(source="error_code")
    count = serializers.IntegerField()
    lastSeen = serializers.DateTimeField(source="last_seen")
    example = serializers.CharField()


class TypeHealthSerializer(serializers.Serializer):  # type: ignore[type-arg]
    eventType = serializers.CharField(source="event_type")
    total = serializers.IntegerField(help_text="Deliveries created in the window, each counted once by status now.")
    delivered = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="failed + cancelled.")
    waiting = serializers.IntegerField(help_text="pending + delivering + retry_scheduled.")
    successRate = serializers.FloatField(source="success_rate", allow_null=True, help_text="delivered / total.")
    attemptsPerMessage = serializers.FloatField(source="attempts_per_message", allow_null=True)
    latencyP50Ms = serializers.FloatField(source="latency_p50_ms", allow_null=True)
    latencyP99Ms = serializers.FloatField(source="latency_p99_ms", allow_null=True)
    lastSuccessAt = serializers.DateTimeField(source="last_success_at", allow_null=True)
    lastFailureAt = serializers.DateTimeField(source="last_failure_at", allow_null=True)
    # DRF lifts declared fields off the class, so the name "errors" is safe; mypy cannot tell.
    errors = ErrorPatternSerializer(many=True)  # type: ignore[assignment]


class EndpointHealthSerializer(serializers.Serializer):  # type: ignore[type-arg]
    endpointId = serializers.UUIDField(source="endpoint.id")
    since = serializers.DateTimeField()
    overall = TypeHealthSerializer()
    byEventType = TypeHealthSerializer(many=True, source="by_event_type")


class StatsQuery(serializers.Serializer):  # type: ignore[type-arg]
    range = serializers.ChoiceField(choices=list(RANGES), default=DEFAULT_RANGE)


# --- Lookups -----------------------------------------------------------------------------------


def _uuid(raw: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise NotFound(f"No such {what}.") from exc


def _endpoints(scope: Scope) -> QuerySet[Endpoint]:
    rows = Endpoint.objects.all()
    return rows if scope.organization is None else rows.filter(organization=scope.organization)


def _endpoint_or_404(scope: Scope, raw_id: str) -> Endpoint:
    # Another organization's endpoint is "not found", exactly like one that does not exist.
    endpoint = _endpoints(scope).filter(id=_uuid(raw_id, "endpoint")).first()
    if endpoint is None:
        raise NotFound("No such endpoint.")
    return endpoint


def _messages(scope: Scope) -> QuerySet[OutboundMessage]:
    rows = OutboundMessage.objects.all()
    return rows if scope.organization is None else rows.filter(organization=scope.organization)


def _message_or_404(scope: Scope, raw_id: str) -> OutboundMessage:
    message = _messages(scope).filter(id=_uuid(raw_id, "message")).first()
    if message is None:
        raise NotFound("No such message.")
    return message


def _valid(serializer: serializers.Serializer) -> dict[str, Any]:  # type: ignore[type-arg]
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _run(act: Any, target: Any, scope: Scope, note: str, code: str, **options: Any) -> Response:
    try:
        entry = act_run(act=act, target=target, actor=scope.actor, note=note, **options)
    except ActRefused as exc:
        raise Conflict(str(exc), code=code) from exc
    done = {"success": True, "status_before": entry.status_before, "status_after": entry.status_after, "pk": entry.pk}
    return Response(ActDoneSerializer(done).data)


# --- Views -------------------------------------------------------------------------------------


class EndpointListView(ApiView):
    required_permission = VIEW_ENDPOINTS

    def get_throttles(self) -> Any:
        self.throttle_scope = "write" if self.request.method == "POST" else "read"
        return super().get_throttles()

    def get_permissions(self) -> Any:
        self.required_permission = ADD_ENDPOINTS if self.request.method == "POST" else VIEW_ENDPOINTS
        return super().get_permissions()

    @extend_schema(
        operation_id="endpoints_list",
        summary="The organization's notification endpoints",
        responses={200: EndpointSerializer(many=True), **errors()},
    )
    def get(self, request: Request) -> Response:
        endpoints = _endpoints(scope_of(request)).order_by("created_at")
        return Response(EndpointSerializer(endpoints, many=True).data)

    @extend_schema(
        operation_id="endpoint_create",
        summary="Add an endpoint; its signing secret is in this answer only",
        request=EndpointInput,
        responses={201: EndpointWithSecretSerializer, **errors(400)},
    )
    def post(self, request: Request) -> Response:
        scope = scope_of(request)
        if scope.organization is None:
            raise ValidationError({"organization": ["Create endpoints with an organization's API key."]})
        data = _valid(EndpointInput(data=request.data))
        endpoint = Endpoint(organization=scope.organization, **data)
        try:
            secret = endpoint_create(endpoint=endpoint)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from exc
        body = {**EndpointSerializer(endpoint).data, "secret": secret}
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


class EndpointDetailView(ApiView):
    def get_throttles(self) -> Any:
        self.throttle_scope = "write" if self.request.method == "PATCH" else "read"
        return super().get_throttles()

    def get_permissions(self) -> Any:
        self.required_permission = CHANGE_ENDPOINTS if self.request.method == "PATCH" else VIEW_ENDPOINTS
        return super().get_permissions()

    @extend_schema(
        operation_id="endpoint_retrieve",
        summary="One endpoint",
        parameters=[ID],
        responses={200: EndpointSerializer, **errors(404)},
    )
    def get(self, request: Request, id: str) -> Response:
        return Response(EndpointSerializer(_endpoint_or_404(scope_of(request), id)).data)

    @extend_schema(
        operation_id="endpoint_update",
        summary="Change an endpoint (headers are replaced whole)",
        parameters=[ID],
        request=EndpointPatch,
        responses={200: EndpointSerializer, **errors(400, 404)},
    )
    def patch(self, request: Request, id: str) -> Response:
        endpoint = _endpoint_or_404(scope_of(request), id)
        for name, value in _valid(EndpointPatch(data=request.data)).items():
            setattr(endpoint, name, value)
        try:
            endpoint.full_clean()
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from exc
        endpoint.save()
        subscriptions_forget()
        return Response(EndpointSerializer(endpoint).data)


class EndpointRotateView(ApiView):
    throttle_scope = "write"
    required_permission = CHANGE_ENDPOINTS

    @extend_schema(
        operation_id="endpoint_rotate_secret",
        summary="A new signing secret (in this answer only); the old ones keep signing for the grace period",
        parameters=[ID],
        request=None,
        responses={200: EndpointWithSecretSerializer, **errors(404)},
    )
    def post(self, request: Request, id: str) -> Response:
        endpoint = _endpoint_or_404(scope_of(request), id)
        secret = endpoint_secret_rotate(endpoint_id=endpoint.id)
        endpoint.refresh_from_db()
        response = Response({**EndpointSerializer(endpoint).data, "secret": secret})
        response["Cache-Control"] = "no-store"
        return response


class EndpointEnableView(ApiView):
    throttle_scope = "write"
    required_permission = ENABLE_ENDPOINT.permission

    @extend_schema(
        operation_id="endpoint_enable",
        summary="Enable an endpoint (audited)",
        parameters=[ID],
        request=NoteBody,
        responses={200: ActDoneSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, id: str) -> Response:
        scope = scope_of(request)
        endpoint = _endpoint_or_404(scope, id)
        note = _valid(NoteBody(data=request.data)).get("note", "")
        return _run(ENABLE_ENDPOINT, endpoint, scope, note, "already_enabled")


class EndpointDisableView(ApiView):
    throttle_scope = "write"
    required_permission = DISABLE_ENDPOINT.permission

    @extend_schema(
        operation_id="endpoint_disable",
        summary="Disable an endpoint, with a note (audited)",
        parameters=[ID],
        request=DisableBody,
        responses={200: ActDoneSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, id: str) -> Response:
        scope = scope_of(request)
        endpoint = _endpoint_or_404(scope, id)
        note = _valid(DisableBody(data=request.data))["note"]
        return _run(DISABLE_ENDPOINT, endpoint, scope, note, "already_disabled")


class EndpointRecoverView(ApiView):
    throttle_scope = "write"
    required_permission = RECOVER_ENDPOINT.permission

    @extend_schema(
        operation_id="endpoint_recover",
        summary="Resend what failed or was missed since a time, paced (dry_run counts only)",
        parameters=[ID],
        request=RecoverBody,
        responses={200: RecoverResultSerializer, 202: ActDoneSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, id: str) -> Response:
        scope = scope_of(request)
        endpoint = _endpoint_or_404(scope, id)
        body = _valid(RecoverBody(data=request.data))
        since = body["since"]
        if body["dry_run"]:
            plan = endpoint_recover_plan(endpoint=endpoint, since=since)
            data = {"dryRun": True, "failed": plan.failed, "missed": plan.missed, "total": plan.total}
            return Response(RecoverResultSerializer(data).data)
        note = f"{body.get('note', '')} (since {since.isoformat()})".strip()
        response = _run(RECOVER_ENDPOINT, endpoint, scope, note, "nothing_to_recover", since=since)
        response.status_code = status.HTTP_202_ACCEPTED
        return response


class EndpointStatsView(ApiView):
    required_permission = VIEW_ENDPOINTS

    @extend_schema(
        operation_id="endpoint_stats",
        summary="Health of one endpoint per event type (the seed's webhook_health_stats)",
        parameters=[ID, StatsQuery],
        responses={200: EndpointHealthSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, id: str) -> Response:
        endpoint = _endpoint_or_404(scope_of(request), id)
        query = _valid(StatsQuery(data=request.query_params.dict()))
        return Response(EndpointHealthSerializer(endpoint_health(endpoint=endpoint, time_range=query["range"])).data)


class MessageListView(ApiView):
    required_permission = "webhooks_app.view_outboundmessage"

    @extend_schema(
        operation_id="messages_list",
        summary="Outbound messages, newest first",
        parameters=[MessageListQuery],
        responses={200: MessagesPageSerializer, **errors(400)},
    )
    def get(self, request: Request) -> Response:
        query = _valid(MessageListQuery(data=request.query_params.dict()))
        messages = _messages(scope_of(request)).order_by("-created_at")
        if "event_type" in query:
            messages = messages.filter(event_type=query["event_type"])
        if "before" in query:
            messages = messages.filter(created_at__lt=query["before"])
        page = list(messages[: query["limit"]])
        return Response(MessagesPageSerializer({"messages": page, "count": len(page)}).data)


class MessageDetailView(ApiView):
    required_permission = "webhooks_app.view_outboundmessage"

    @extend_schema(
        operation_id="message_retrieve",
        summary="One message with its deliveries and every attempt",
        parameters=[ID],
        responses={200: OutboundMessageDetailSerializer, **errors(404)},
    )
    def get(self, request: Request, id: str) -> Response:
        message = _message_or_404(scope_of(request), id)
        message = OutboundMessage.objects.prefetch_related("deliveries__attempt_log").get(id=message.id)
        return Response(OutboundMessageDetailSerializer(message).data)


class MessageRetryView(ApiView):
    throttle_scope = "write"
    required_permission = RETRY_MESSAGE.permission

    @extend_schema(
        operation_id="message_retry",
        summary="Resend the message's failed deliveries (audited)",
        parameters=[ID],
        request=NoteBody,
        responses={200: ActDoneSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, id: str) -> Response:
        scope = scope_of(request)
        message = _message_or_404(scope, id)
        note = _valid(NoteBody(data=request.data)).get("note", "")
        return _run(RETRY_MESSAGE, message, scope, note, "nothing_to_retry")


class DeliveryRetryView(ApiView):
    throttle_scope = "write"
    required_permission = RETRY_DELIVERY.permission

    @extend_schema(
        operation_id="delivery_retry",
        summary="Resend one delivery now (audited)",
        parameters=[ID],
        request=NoteBody,
        responses={200: ActDoneSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, id: str) -> Response:
        scope = scope_of(request)
        deliveries = Delivery.objects.filter(id=_uuid(id, "delivery"))
        if scope.organization is not None:
            deliveries = deliveries.filter(organization=scope.organization)
        delivery = deliveries.first()
        if delivery is None:
            raise NotFound("No such delivery.")
        note = _valid(NoteBody(data=request.data)).get("note", "")
        return _run(RETRY_DELIVERY, delivery, scope, note, "nothing_to_retry")
