"""The intake a Django team would write by default: the second baseline of `make bench`.

Standard Webhooks verification with the library, the source looked up with the ORM, one
`Model.objects.create` in a transaction and `on_commit(task.delay)`. No deduplication (a
redelivery is a second row, or a 500 on the unique key), no outbox state, no raw body, no
rate limit, no size or UTF-8 checks. mendhook's intake must beat it while doing those.
"""

import json
import os
import uuid

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bench.tasks import peer_process
from webhooks_app.models import Source, WebhookEvent

# Where such a team keeps its secret: the environment (the bench sets it for its gunicorn).
SECRET_ENV = "BENCH_PEER_SECRET"


@csrf_exempt
def peer_intake(request: HttpRequest, source_slug: str) -> JsonResponse:
    source = get_object_or_404(Source, slug=source_slug)
    try:
        payload = Webhook(os.environ[SECRET_ENV]).verify(request.body, dict(request.headers))
    except WebhookVerificationError:
        return JsonResponse({"error": "invalid signature"}, status=401)
    with transaction.atomic():
        event = WebhookEvent.objects.create(
            organization_id=source.organization_id,
            source=source,
            # Unique per source in mendhook's table; a peer's own table would have no such key.
            idempotency_key=f"peer:{uuid.uuid4()}",
            event_type=str(payload.get("type", "unknown"))[:100],
            payload=payload,
            headers=json.loads(json.dumps(dict(request.headers))),
        )
        transaction.on_commit(lambda: peer_process.delay(str(event.id)))
    return JsonResponse({"id": str(event.id)}, status=202)
