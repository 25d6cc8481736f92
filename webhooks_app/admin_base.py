"""Admin pieces both rooms use: webhooks_app's own admin and the operator screens in ops_app
(which may import webhooks_app, never the reverse)."""

from typing import Any

from django.http import HttpRequest


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
