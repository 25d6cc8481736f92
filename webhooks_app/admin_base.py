"""Admin pieces both rooms use: webhooks_app's own admin and the operator screens in ops_app
(which may import webhooks_app, never the reverse)."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from webhooks_app.models import Organization


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OrganizationPreselectMixin(admin.ModelAdmin[Any]):
    """On an add form, the organization is chosen already when there is only one: a single-firm
    installation never has to pick it."""

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial: dict[str, Any] = super().get_changeform_initial_data(request)
        if "organization" not in initial:
            only = list(Organization.objects.values_list("pk", flat=True)[:2])
            if len(only) == 1:
                initial["organization"] = only[0]
        return initial
