from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from ops_app.views import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("webhooks/", include("webhooks_app.urls")),
    path("health/", health, name="health"),
    path("api/", include("ops_app.api.urls")),
    *([path("sandbox/clio/", include("localdev.sandbox"))] if settings.MENDHOOK_DEMO_SANDBOX else []),
]
