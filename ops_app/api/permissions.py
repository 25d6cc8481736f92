"""Who may call which endpoint."""

from typing import TYPE_CHECKING

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from ops_app.models import ApiKey

if TYPE_CHECKING:
    # Not at run time: DRF imports these classes while rest_framework.views is half-loaded.
    from rest_framework.views import APIView

# The admin's own permissions: a session user may do over the API what the admin lets them do.
VIEW_EVENTS = "webhooks_app.view_webhookevent"
RETRY_EVENTS = "webhooks_app.retry_event"
RESOLVE_EVENTS = "webhooks_app.resolve_event"


class ApiAccess(BasePermission):
    """An API key may use every endpoint for its own organization. A session user must be
    active staff holding the view's `required_permission` (reads: view_webhookevent)."""

    def has_permission(self, request: Request, view: "APIView") -> bool:
        if isinstance(request.auth, ApiKey):
            return True
        user = request.user
        if not (user.is_authenticated and user.is_active and user.is_staff):
            return False
        return bool(user.has_perm(getattr(view, "required_permission", VIEW_EVENTS)))
