"""OpenAPI pieces drf-spectacular cannot infer. Imported by ops_app.api.urls, so it is loaded
before any schema is generated (not from authentication.py: that would import DRF's views while
DRF is still importing the authentication classes)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema


class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "ops_app.api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An organization's API key (mhk_…), made in the admin or with "
            "`manage.py create_api_key`. The key sees and acts on its organization's data only.",
        }
