"""The one error shape every JSON answer uses: {"error": {"code", "message", "fields"?}}.

The intake view, the database-outage middleware and the REST API's exception handler all build
their errors here, so a client parses one shape whichever door it knocked on.
"""

from typing import Any

from django.http import JsonResponse


def error_body(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def error_response(status: int, code: str, message: str, *, fields: dict[str, list[str]] | None = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, fields), status=status)
