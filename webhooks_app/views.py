"""The intake endpoint: POST /webhooks/<source-slug>/ (the trailing slash is optional).

Cheap checks first (source, content type, size), then UTF-8, then the signature over the raw
bytes, then the rate limits (429 + Retry-After), then JSON. Nothing is stored unless every
check passes, and every answer under /webhooks/ is JSON in the shape of config.http_errors.
"""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from config.http_errors import error_response
from webhooks_app.json_bodies import BodyError, body_parse, body_text
from webhooks_app.rate_limits import Refusal, intake_admit
from webhooks_app.refusals import disabled_source_refused
from webhooks_app.selectors import source_by_slug
from webhooks_app.services.intake import UnstorableEvent, event_receive
from webhooks_app.signatures import SignatureError, verify_signature


@csrf_exempt
def intake(request: HttpRequest, source_slug: str) -> JsonResponse:
    if request.method != "POST":
        response = error_response(405, "method_not_allowed", "webhooks are delivered with POST")
        response["Allow"] = "POST"
        return response
    source = source_by_slug(source_slug)
    if source is None or not source.enabled:
        if source is not None:
            # The same answer as an unknown slug, but counted: a sender still delivering to a
            # switched-off source is a diagnostic (ops_app.diagnostics), not silence.
            disabled_source_refused(source_id=source.pk)
        return error_response(404, "unknown_source", f"no enabled source '{source_slug}'")

    content_type = (request.content_type or "").lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        return error_response(415, "unsupported_media_type", "Content-Type must be application/json")

    limit = source.max_payload_bytes
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return error_response(400, "bad_content_length", "Content-Length is not a number")
    if declared > limit:
        return error_response(413, "payload_too_large", f"body exceeds {limit} bytes")
    # Read, never request.body: the source's limit, not DATA_UPLOAD_MAX_MEMORY_SIZE, applies here.
    body = request.read(limit + 1)
    if len(body) > limit:
        return error_response(413, "payload_too_large", f"body exceeds {limit} bytes")

    headers = dict(request.headers)
    try:
        # Before the signature: a signing library that decodes the body would call a correctly
        # signed non-UTF-8 body a bad signature.
        text = body_text(body)
        verify_signature(source, body, headers)
        # After the signature, so forged requests cannot use up a sender's budget; before
        # parsing and storing, so a flood costs no database work.
        refusal = intake_admit(source_slug=source.slug, source_limit=source.rate_limit)
        if refusal is not None:
            return _rate_limited(refusal)
        payload = body_parse(text)
        received = event_receive(source=source, body=body, text=text, payload=payload, headers=headers)
    except BodyError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except SignatureError as exc:
        return error_response(401, "invalid_signature", str(exc))
    except UnstorableEvent as exc:
        return error_response(422, "unstorable_payload", str(exc))
    body_out = {**received.event.response_body, "duplicate": received.duplicate}
    return JsonResponse(body_out, status=200 if received.duplicate else 202)


def _rate_limited(refusal: Refusal) -> JsonResponse:
    which = "this source's" if refusal.scope.startswith("intake:source:") else "the platform's"
    response = error_response(
        429,
        "rate_limited",
        f"over {which} intake limit of {refusal.limit}; nothing was stored, retry after {refusal.retry_after}s",
    )
    response["Retry-After"] = str(refusal.retry_after)
    return response


@csrf_exempt
def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Any other path under /webhooks/ (an odd slug, an extra segment): JSON, not Django's page."""
    return error_response(404, "not_found", "no such webhook endpoint; POST to /webhooks/<source-slug>/")
