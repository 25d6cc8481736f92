"""The intake endpoint: POST /webhooks/<source-slug>/.

Cheap checks first (source, content type, size), then the signature over the raw bytes, then
JSON. Nothing is stored unless every check passes.
"""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from webhooks_app.selectors import source_for_intake
from webhooks_app.services.intake import PayloadError, event_receive, parse_payload
from webhooks_app.signatures import SignatureError, verify_signature


def error_response(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


@csrf_exempt
def intake(request: HttpRequest, source_slug: str) -> JsonResponse:
    if request.method != "POST":
        response = error_response(405, "method_not_allowed", "webhooks are delivered with POST")
        response["Allow"] = "POST"
        return response
    source = source_for_intake(source_slug)
    if source is None:
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
    body = request.read(limit + 1)
    if len(body) > limit:
        return error_response(413, "payload_too_large", f"body exceeds {limit} bytes")

    headers = dict(request.headers)
    try:
        verify_signature(source, body, headers)
    except SignatureError as exc:
        return error_response(401, "invalid_signature", str(exc))

    try:
        payload = parse_payload(body)
    except PayloadError as exc:
        return error_response(400, "invalid_json", str(exc))

    received = event_receive(source=source, body=body, payload=payload, headers=headers)
    body_out = {**received.event.response_body, "duplicate": received.duplicate}
    return JsonResponse(body_out, status=200 if received.duplicate else 202)
