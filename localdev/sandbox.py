"""A stand-in for Clio's task API with scripted faults, so the demo shows retries and dead
letters without a Clio account. config/urls.py mounts it only when DEMO_SANDBOX is on.

The matter id picks the behaviour: ending in 7, the API is down for good (5xx: dead letter);
ending in 3, each task fails twice with 500 and then succeeds (retried); otherwise it works.
"""

import json
import logging

import redis
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from webhooks_app.models import LocalTask, Organization

_redis: redis.Redis | None = None
logger = logging.getLogger(__name__)


def sandbox_redis() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(settings.REDIS_URL)
    return _redis


def sandbox_counter(key: str) -> int:
    store = sandbox_redis()
    count = int(store.incr(f"mendhook:sandbox:{key}"))
    store.expire(f"mendhook:sandbox:{key}", 3600)
    return count


def scripted_failure(status: int, message: str, *, matter_id: str) -> JsonResponse:
    """A 5xx the script asked for. Django logs every 5xx as `ERROR django.request Internal Server
    Error`; these are the demo working as intended (the connector records and retries them), so
    the response is marked as logged already, as Django itself does once it has logged one."""
    logger.info("sandbox: scripted %d for matter %s", status, matter_id)
    response = JsonResponse({"error": message}, status=status)
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


@csrf_exempt
def create_task(request: HttpRequest) -> JsonResponse:
    key = request.headers.get("Idempotency-Key", "")
    try:
        data = json.loads(request.body)["data"]
        matter_id = str(data["matter"]["id"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "bad request"}, status=400)
    if not key:
        return JsonResponse({"error": "Idempotency-Key required"}, status=400)
    if matter_id.endswith("7"):
        return scripted_failure(503, "service unavailable", matter_id=matter_id)
    if matter_id.endswith("3") and sandbox_counter(key) <= 2:
        return scripted_failure(500, "internal error", matter_id=matter_id)
    organization = Organization.objects.order_by("id").first()
    if organization is None:
        return JsonResponse({"error": "no organization"}, status=500)
    task, _ = LocalTask.objects.get_or_create(
        idempotency_key=f"sandbox:{key}",
        defaults={
            "organization": organization,
            "entity_id": matter_id,
            "title": str(data.get("name", ""))[:255],
            "description": str(data.get("description", "")),
            "assignee": str((data.get("assignee") or {}).get("id", "")),
        },
    )
    return JsonResponse({"data": {"id": task.pk}}, status=201)


urlpatterns = [path("api/v4/tasks.json", create_task)]
