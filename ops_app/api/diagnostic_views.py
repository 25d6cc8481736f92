"""GET /api/v1/diagnostics: configuration problems, most severe first; an API key sees its
organization's, staff see the global ones too (open circuit breakers of shared providers)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ops_app.api.authentication import scope_of
from ops_app.api.exceptions import errors
from ops_app.models import Diagnostic, DiagnosticKind, DiagnosticSeverity

# A list to act on, not an archive (the admin has the rest).
DIAGNOSTICS_LIMIT = 200
STATES = [("open", "Open: the cause is still there"), ("resolved", "Resolved: the cause is gone"), ("all", "All")]


class DiagnosticsQuery(serializers.Serializer):  # type: ignore[type-arg]
    state = serializers.ChoiceField(choices=STATES, required=False, default="open")


class DiagnosticSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=DiagnosticKind.choices)
    severity = serializers.ChoiceField(choices=DiagnosticSeverity.choices)
    scope = serializers.CharField(help_text="'global' or 'org:<id>'")
    subject = serializers.CharField(help_text="What it is about: 'csc@Naples', 'source:12', a breaker's name")
    message = serializers.CharField()
    fix = serializers.CharField(help_text="What to do about it")
    link = serializers.CharField(help_text="Path of the admin page that fixes it")
    firstSeen = serializers.DateTimeField(source="first_seen")
    lastSeen = serializers.DateTimeField(source="last_seen")
    resolvedAt = serializers.DateTimeField(source="resolved_at", allow_null=True)


class DiagnosticsPageSerializer(serializers.Serializer):  # type: ignore[type-arg]
    diagnostics = DiagnosticSerializer(many=True)
    count = serializers.IntegerField()


class DiagnosticsView(APIView):
    throttle_scope = "read"
    required_permission = "ops_app.view_diagnostic"

    @extend_schema(
        operation_id="diagnostics_list",
        summary="Configuration problems, most severe first",
        description=f"Open diagnostics by default (at most {DIAGNOSTICS_LIMIT}); `state=resolved` "
        "or `all` for those whose cause is gone. Each has a message, a fix and the admin page "
        "that fixes it. An API key sees its organization's; global ones (the shared providers' "
        "circuit breakers) are for staff.",
        parameters=[DiagnosticsQuery],
        responses={200: DiagnosticsPageSerializer, **errors(400)},
    )
    def get(self, request: Request) -> Response:
        query = DiagnosticsQuery(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        rows = Diagnostic.objects.all()
        organization_id = scope_of(request).organization_id
        if organization_id is not None:
            rows = rows.filter(organization_id=organization_id)
        state = query.validated_data["state"]
        if state == "open":
            rows = rows.filter(resolved_at__isnull=True)
        elif state == "resolved":
            rows = rows.filter(resolved_at__isnull=False)
        page = list(rows.most_severe_first()[:DIAGNOSTICS_LIMIT])
        return Response(DiagnosticsPageSerializer({"diagnostics": page, "count": len(page)}).data)
