"""The product URLs plus the intake baselines: /bench/noop/ and the default peer (bench/peer.py)."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from bench.peer import peer_intake


@csrf_exempt
def noop(request: HttpRequest) -> JsonResponse:
    """Answers any method with a tiny JSON body and touches nothing: no database, no broker."""
    return JsonResponse({"ok": True}, status=200)


urlpatterns = [
    path("bench/noop/", noop, name="bench-noop"),
    path("bench/peer/<slug:source_slug>/", peer_intake, name="bench-peer"),
    path("", include("config.urls")),
]
