from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from ops_app.metrics import metrics_view
from ops_app.views import health, live, ready
from webhooks_app.views import not_found as webhook_not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("webhooks/", include("webhooks_app.urls")),
    re_path(r"^webhooks$", webhook_not_found),  # else APPEND_SLASH would answer with HTML
    path("health/", health, name="health"),
    path("health/live", live, name="health-live"),
    path("health/ready", ready, name="health-ready"),
    path("metrics", metrics_view, name="metrics"),
    path("api/", include("ops_app.api.urls")),
    *(
        [
            path("sandbox/clio/", include("localdev.sandbox")),
            path("sandbox/receiver/", include("localdev.sandbox_receiver")),
            path("sandbox/", include("localdev.sandbox_providers")),
        ]
        if settings.MENDHOOK_DEMO_SANDBOX
        else []
    ),
]
