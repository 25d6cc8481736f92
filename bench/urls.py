"""The product URLs plus /bench/noop/: the baseline the intake endpoint is measured against."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def noop(request: HttpRequest) -> JsonResponse:
    """Answers any method with a tiny JSON body and touches nothing: no database, no broker."""
    return JsonResponse({"ok": True}, status=200)


urlpatterns = [
    path("bench/noop/", noop, name="bench-noop"),
    path("", include("config.urls")),
]
