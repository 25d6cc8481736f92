"""The REST API under /api/v1/: delivery stats, queue health, failures, acts on events, replays.
The OpenAPI schema is at /api/schema/ (checked in as docs/openapi.yaml), Swagger UI at /api/docs/."""

from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from ops_app.api import alert_views, diagnostic_views, outbound_views, replay_views, schema, views, workflow_views
from ops_app.api.exceptions import not_found

# schema registers the API-key security scheme with drf-spectacular.
__all__ = ["schema", "urlpatterns"]

v1 = [
    path("queue-health", views.QueueHealthView.as_view(), name="queue-health"),
    path("delivery-stats", views.DeliveryStatsView.as_view(), name="delivery-stats"),
    path("failures", views.FailuresView.as_view(), name="failures"),
    path("dead-letters", views.DeadLettersView.as_view(), name="dead-letters"),
    # str, not uuid: a malformed id must get the API's JSON 404, not Django's HTML one.
    path("events/<str:id>", views.EventDetailView.as_view(), name="event-detail"),
    path("events/<str:id>/retry", views.EventRetryView.as_view(), name="event-retry"),
    path("events/<str:id>/resolve", views.EventResolveView.as_view(), name="event-resolve"),
    path("breakers", views.BreakersView.as_view(), name="breakers"),
    path("replays", replay_views.ReplayCreateView.as_view(), name="replay-create"),
    path("replays/<str:id>", replay_views.ReplayDetailView.as_view(), name="replay-detail"),
    path("replays/<str:id>/cancel", replay_views.ReplayCancelView.as_view(), name="replay-cancel"),
    path("leads", workflow_views.LeadListView.as_view(), name="leads"),
    path("leads/<str:id>", workflow_views.LeadDetailView.as_view(), name="lead-detail"),
    path("workflows", workflow_views.WorkflowListView.as_view(), name="workflows"),
    path("workflows/<str:id>", workflow_views.WorkflowDetailView.as_view(), name="workflow-detail"),
    path("workflow-runs", workflow_views.RunListView.as_view(), name="workflow-runs"),
    path("workflow-runs/<str:id>", workflow_views.RunDetailView.as_view(), name="workflow-run-detail"),
    path("workflow-runs/<str:id>/retry", workflow_views.RunRetryView.as_view(), name="workflow-run-retry"),
    path("workflow-runs/<str:id>/skip", workflow_views.RunSkipView.as_view(), name="workflow-run-skip"),
    path("workflow-runs/<str:id>/cancel", workflow_views.RunCancelView.as_view(), name="workflow-run-cancel"),
    path("workflow-runs/<str:id>/reset", workflow_views.RunResetView.as_view(), name="workflow-run-reset"),
    path("call-logs", workflow_views.CallListView.as_view(), name="call-logs"),
    path("call-logs/<str:id>", workflow_views.CallDetailView.as_view(), name="call-log-detail"),
    path("call-logs/<str:id>/retry-actions", workflow_views.CallRetryActionsView.as_view(), name="call-log-retry"),
    path("workflow-stats", workflow_views.WorkflowStatsView.as_view(), name="workflow-stats"),
    path("alerts", alert_views.AlertsView.as_view(), name="alerts"),
    # Outbound notifications.
    path("endpoints", outbound_views.EndpointListView.as_view(), name="endpoint-list"),
    path("endpoints/<str:id>", outbound_views.EndpointDetailView.as_view(), name="endpoint-detail"),
    path("endpoints/<str:id>/rotate-secret", outbound_views.EndpointRotateView.as_view(), name="endpoint-rotate"),
    path("endpoints/<str:id>/enable", outbound_views.EndpointEnableView.as_view(), name="endpoint-enable"),
    path("endpoints/<str:id>/disable", outbound_views.EndpointDisableView.as_view(), name="endpoint-disable"),
    path("endpoints/<str:id>/recover", outbound_views.EndpointRecoverView.as_view(), name="endpoint-recover"),
    path("endpoints/<str:id>/stats", outbound_views.EndpointStatsView.as_view(), name="endpoint-stats"),
    path("messages", outbound_views.MessageListView.as_view(), name="message-list"),
    path("messages/<str:id>", outbound_views.MessageDetailView.as_view(), name="message-detail"),
    path("messages/<str:id>/retry", outbound_views.MessageRetryView.as_view(), name="message-retry"),
    path("deliveries/<str:id>/retry", outbound_views.DeliveryRetryView.as_view(), name="delivery-retry"),
    path("diagnostics", diagnostic_views.DiagnosticsView.as_view(), name="diagnostics"),
]

urlpatterns: list[URLPattern | URLResolver] = [
    path("v1/", include((v1, "api"), namespace="v1")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Log in here (or in the admin) to use the browsable API as a staff user.
    path("auth/", include("rest_framework.urls")),
    re_path(r"^(?P<path>.*)$", not_found),
]
