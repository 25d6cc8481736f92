"""A demo customer receiving mendhook's notifications: verifies each request's Standard Webhooks
signature with the endpoint's secrets (the standardwebhooks library), and, on the flaky path,
fails the first two tries of every message with 503 so retries show. Mounted under
/sandbox/receiver/ only with DEMO_SANDBOX on."""

import json
import logging

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from localdev.sandbox import sandbox_counter, scripted_failure
from webhooks_app.models import Endpoint

logger = logging.getLogger(__name__)


@csrf_exempt
def receive(request: HttpRequest, name: str) -> JsonResponse:
    url_tail = f"/sandbox/receiver/{name}/"
    endpoints = [e for e in Endpoint.objects.filter(url__endswith=url_tail)]
    headers = {k.lower(): v for k, v in request.headers.items()}
    for endpoint in endpoints:
        for secret in endpoint.signing_secrets_valid(now=timezone.now()):
            try:
                payload = Webhook(secret).verify(request.body, headers)
            except WebhookVerificationError:
                continue
            webhook_id = headers.get("webhook-id", "")
            if name == "flaky" and sandbox_counter(f"receiver:{webhook_id}") <= 2:
                return scripted_failure(503, "receiver busy", matter_id=webhook_id)
            logger.info("receiver %s: %s %s", name, payload.get("type"), json.dumps(payload.get("data"))[:200])
            return JsonResponse({"received": webhook_id})
    return JsonResponse({"error": "signature does not verify"}, status=401)


urlpatterns = [path("<slug:name>/", receive)]
