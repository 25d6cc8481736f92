"""Organizations and the sources that send them webhooks."""

import secrets

from django.db import models


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class SourceKind(models.TextChoices):
    CLIO = "clio", "Clio"
    VAPI = "vapi", "Vapi"
    RETELL = "retell", "Retell"
    LLAMAPARSE = "llamaparse", "LlamaParse"
    GENERIC = "generic", "Generic"


class SigningScheme(models.TextChoices):
    # webhook-id / webhook-timestamp / webhook-signature, verified by the standardwebhooks library.
    STANDARD_WEBHOOKS = "standard_webhooks", "Standard Webhooks"
    # Hex HMAC-SHA256 of the raw body in one header, as several providers send it.
    HMAC_SHA256 = "hmac_sha256", "HMAC-SHA256 of body"


class ConnectorKind(models.TextChoices):
    # Tasks stored in mendhook's own database: the embedded default and the demo.
    LOCAL = "local", "Local tasks table"
    # A Clio-style REST API reached over HTTP.
    CLIO_HTTP = "clio_http", "Clio HTTP API"


def new_signing_secret() -> str:
    # The Standard Webhooks secret format: "whsec_" + base64 of 24-64 random bytes.
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class Source(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="sources")
    slug = models.SlugField(max_length=100, unique=True, help_text="The URL part: /webhooks/<slug>/")
    kind = models.CharField(max_length=20, choices=SourceKind.choices, default=SourceKind.GENERIC)
    enabled = models.BooleanField(default=True)

    signing_scheme = models.CharField(
        max_length=30, choices=SigningScheme.choices, default=SigningScheme.STANDARD_WEBHOOKS
    )
    # Several secrets at once so a sender can rotate: any one of them verifies.
    signing_secrets = models.JSONField(default=list)
    signature_header = models.CharField(
        max_length=100, default="X-Signature", help_text="Header of the HMAC-SHA256 scheme"
    )
    # The standardwebhooks library itself rejects timestamps more than 5 minutes off; a source
    # may only be stricter.
    timestamp_tolerance_seconds = models.PositiveIntegerField(default=300)
    max_payload_bytes = models.PositiveIntegerField(default=1024 * 1024)

    # Retry policy for transient failures: attempt n waits base * factor**(n-1) seconds (+ jitter).
    max_attempts = models.PositiveSmallIntegerField(default=3)
    backoff_base_seconds = models.FloatField(default=2.0)
    backoff_factor = models.FloatField(default=2.0)

    connector = models.CharField(max_length=20, choices=ConnectorKind.choices, default=ConnectorKind.LOCAL)
    connector_base_url = models.URLField(blank=True)
    connector_token = models.CharField(max_length=500, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug
