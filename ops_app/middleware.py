"""Answers 503 with Retry-After when the database cannot be reached, instead of a 500."""

from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from config.http_errors import error_response

RETRY_AFTER_SECONDS = 5


def _unavailable() -> JsonResponse:
    response = error_response(503, "database_unavailable", "The database is unavailable; retry later.")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            return self.get_response(request)
        except (OperationalError, InterfaceError):
            return _unavailable()

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # OperationalError/InterfaceError mean the connection, not the query, went wrong.
        if isinstance(exception, (OperationalError, InterfaceError)):
            return _unavailable()
        return None
