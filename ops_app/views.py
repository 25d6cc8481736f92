"""Health endpoints for load balancers, container probes and monitors."""

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from config.http_errors import error_response
from ops_app.health.readiness import RETRY_AFTER_SECONDS, Role, readiness


def health(request: HttpRequest) -> JsonResponse:
    """The first health endpoint: the process answers and the database runs a query. Kept for
    the probes that use it; /health/ready says more."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def _not_get(request: HttpRequest) -> JsonResponse | None:
    if request.method in ("GET", "HEAD"):
        return None
    response = error_response(405, "method_not_allowed", "Health endpoints answer GET only.")
    response["Allow"] = "GET, HEAD"
    return response


@never_cache
def live(request: HttpRequest) -> JsonResponse:
    """The process answers requests. No dependency is asked: a database outage must not make an
    orchestrator restart every web process."""
    return _not_get(request) or JsonResponse({"status": "ok"})


@never_cache
def ready(request: HttpRequest) -> JsonResponse:
    """Each component's state; 503 with Retry-After when one the role needs is down.
    `?role=web` (default), `beat` or `platform` (every component must answer)."""
    if refused := _not_get(request):
        return refused
    name = request.GET.get("role", Role.WEB.value)
    if name not in {Role.WEB, Role.BEAT, Role.PLATFORM}:
        return error_response(400, "invalid_role", f"Unknown role {name!r}; expected web, beat or platform.")
    report = readiness(role=Role(name))
    response = JsonResponse(report.as_json(), status=200 if report.ready else 503)
    if not report.ready:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
