"""Calling the REST API as a client does: one API key per organization, answers as JSON."""

from typing import Any

from django.test import Client

from ops_app.models import ApiKey
from tests.factories import OrganizationFactory, SourceFactory
from webhooks_app.models import Organization, Source


class Api:
    """A client that sends one API key, and answers parsed JSON."""

    def __init__(self, raw_key: str | None, client: Client | None = None):
        self.client = client or Client()
        self.headers = {"Authorization": f"Bearer {raw_key}"} if raw_key else {}

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(f"/api/v1/{path}", params, headers=self.headers)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.client.post(f"/api/v1/{path}", body or {}, content_type="application/json", headers=self.headers)

    def patch(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.client.patch(f"/api/v1/{path}", body or {}, content_type="application/json", headers=self.headers)


def api_for(organization: Organization) -> Api:
    _, raw_key = ApiKey.issue(organization=organization, name="test")
    return Api(raw_key)


def other_org_source() -> Source:
    return SourceFactory(organization=OrganizationFactory())
