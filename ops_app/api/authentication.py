"""Who is calling: an organization's API key (Bearer), or a staff user's session, and what they
may see (Scope)."""

from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from ops_app.models import ApiKey
from webhooks_app.models import Organization, WebhookEvent
from webhooks_app.services.operations import Actor

KEYWORD = b"bearer"


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <key>`. No header, or another scheme: not ours (a session may
    still authenticate). A Bearer header with a bad key: 401, never a silent fallback."""

    def authenticate(self, request: Request) -> tuple[AnonymousUser, ApiKey] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Malformed Authorization header; expected 'Bearer <API key>'.")
        try:
            raw_key = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed("Unknown or revoked API key.") from exc
        key = ApiKey.objects.for_raw_key(raw_key)
        if key is None:
            raise AuthenticationFailed("Unknown or revoked API key.")
        key.touch(now=timezone.now())
        return AnonymousUser(), key

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return 'Bearer realm="mendhook"'


@dataclass(frozen=True)
class Scope:
    """What one request may see and act on, and who it is in the audit trail.

    An API key sees its organization only. A staff user's session (the browsable API) sees
    every organization, like the admin, gated by the same model permissions (see ApiAccess).
    """

    organization: Organization | None
    actor: Actor
    api_key: ApiKey | None = None

    @property
    def organization_id(self) -> int | None:
        return self.organization.pk if self.organization else None

    def events(self) -> QuerySet[WebhookEvent]:
        events = WebhookEvent.objects.all()
        return events if self.organization is None else events.filter(organization=self.organization)


def scope_of(request: Request) -> Scope:
    if isinstance(request.auth, ApiKey):
        key = request.auth
        return Scope(organization=key.organization, actor=Actor(label=f"api-key:{key.prefix}", via="api"), api_key=key)
    # ApiAccess let the request in, so this is an active staff user.
    return Scope(organization=None, actor=Actor.from_user(request.user, via="api"))
