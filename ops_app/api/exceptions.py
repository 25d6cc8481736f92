"""The API's exception handler and its error schema; the shape itself is built in
config.http_errors, shared with the intake and the database-outage middleware."""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from config.http_errors import error_body, error_response


class Conflict(exceptions.APIException):
    """The act does not apply to the object in its current state (nothing to retry, already
    resolved, replay already finished)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """{"filter": {"status": ["..."]}} -> {"filter.status": ["..."]}: one flat map a client can
    show next to its form fields."""
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(detail, list) and any(isinstance(d, dict | list) for d in detail):
        flat = {}
        for index, value in enumerate(detail):
            flat.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    messages = detail if isinstance(detail, list) else [detail]
    return {prefix or "non_field_errors": [str(m) for m in messages]}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    # DRF's handler sets the headers that go with an error (WWW-Authenticate, Retry-After).
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response  # not an API error: the middleware (503) or Django (500) answers
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        general = fields.pop("non_field_errors", None)
        message = general[0] if general else "Invalid input; see fields."
        response.data = error_body("invalid", message, fields)
        return response
    detail = exc.detail
    code = detail.code if isinstance(detail, exceptions.ErrorDetail) and detail.code else exc.default_code
    response.data = error_body(str(code), str(detail))
    return response


def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Unknown URLs under /api/ answer in the API's error shape, not Django's HTML page."""
    return error_response(404, "not_found", "Not found.")


# --- The shape in the OpenAPI schema ----------------------------------------------------------


class ErrorDetailSerializer(serializers.Serializer):  # type: ignore[type-arg]
    code = serializers.CharField(help_text="Machine-readable, e.g. invalid, not_found, nothing_to_retry.")
    message = serializers.CharField()
    # DRF lifts declared fields off the class, so the name "fields" is safe; mypy cannot tell.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Per input field (dotted for nested ones): what is wrong with it.",
    )


class ErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    error = ErrorDetailSerializer()


ERROR_MEANINGS = {
    400: "A parameter or the body is invalid (error.fields says which).",
    401: "No API key, or an unknown or revoked one.",
    403: "A session user without the permission this endpoint needs.",
    404: "No such object in the caller's organization (also for a malformed id).",
    409: "The act does not apply in the object's current state.",
    429: "Rate limit of the API key exceeded; Retry-After says when to retry.",
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    every = sorted({401, 403, 429, *codes})
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_MEANINGS[code]) for code in every}
