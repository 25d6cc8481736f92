"""GET /api/v1/alerts: alerts on trends, newest first; an API key sees its organization's."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ops_app.api.authentication import scope_of
from ops_app.api.exceptions import errors
from ops_app.api.permissions import VIEW_EVENTS
from ops_app.models import Alert, AlertState

# The newest alerts only: a list to look at, not an archive (the admin has the rest).
ALERTS_LIMIT = 100


class AlertsQuery(serializers.Serializer):  # type: ignore[type-arg]
    state = serializers.ChoiceField(choices=AlertState.choices, required=False)


class AlertSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    condition = serializers.CharField()
    scope = serializers.CharField(help_text="'global' or 'org:<id>'")
    subject = serializers.CharField(help_text="A queue's or a breaker's name; empty otherwise")
    state = serializers.ChoiceField(choices=AlertState.choices)
    startedAt = serializers.DateTimeField(source="started_at")
    endedAt = serializers.DateTimeField(source="ended_at", allow_null=True)
    lastValue = serializers.FloatField(source="last_value", allow_null=True)
    threshold = serializers.FloatField()
    message = serializers.CharField()


class AlertsPageSerializer(serializers.Serializer):  # type: ignore[type-arg]
    alerts = AlertSerializer(many=True)
    count = serializers.IntegerField()


class AlertsView(APIView):
    throttle_scope = "read"
    required_permission = VIEW_EVENTS

    @extend_schema(
        operation_id="alerts_list",
        summary="Alerts on trends, newest first",
        description=f"Firing or resolved alerts (at most {ALERTS_LIMIT}). An API key sees its "
        "organization's alerts; global ones (queue depth, breakers) are for staff.",
        parameters=[AlertsQuery],
        responses={200: AlertsPageSerializer, **errors(400)},
    )
    def get(self, request: Request) -> Response:
        query = AlertsQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        alerts = Alert.objects.all()
        organization_id = scope_of(request).organization_id
        if organization_id is not None:
            alerts = alerts.filter(organization_id=organization_id)
        if "state" in query.validated_data:
            alerts = alerts.filter(state=query.validated_data["state"])
        page = list(alerts.order_by("-started_at", "-id")[:ALERTS_LIMIT])
        return Response(AlertsPageSerializer({"alerts": page, "count": len(page)}).data)
