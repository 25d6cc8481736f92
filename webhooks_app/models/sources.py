"""Organizations and the sources that send them webhooks.

A source's signing secrets and connector token are write-only: stored encrypted
(webhooks_app.encryption), readable in code that needs them (signature checks, connectors), and
shown to people once, when made; after that only a masked hint."""

import base64
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from webhooks_app.encryption import SecretUnreadable, secret_decrypt, secret_encrypt
from webhooks_app.errors import ErrorCode
from webhooks_app.rate_limits import rate_limit_validate
from webhooks_app.reporting import report_failure

logger = logging.getLogger(__name__)


def default_business_days() -> list[int]:
    return [0, 1, 2, 3, 4]  # Monday to Friday, as datetime.weekday() counts


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    # Business hours: workflow retries that fail inside them are retried within the hour, those
    # failing outside wait for the next business morning (workflows_app smart scheduling).
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA name, e.g. America/New_York")
    business_hours_start = models.TimeField(default=time(9, 0))
    business_hours_end = models.TimeField(default=time(17, 0))
    business_days = models.JSONField(default=default_business_days, help_text="Weekdays, Monday = 0")
    # Days finished events are kept before retention deletes them; empty: RETENTION_DAYS.
    retention_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Days to keep finished events (empty: the installation's default)"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped whenever one of its task templates or assignee rules is saved or deleted: workers
    # cache that configuration per organization under this number (handlers/task_config.py).
    config_version = models.PositiveIntegerField(default=0, editable=False)

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError({"timezone": f"unknown time zone: {self.timezone!r}"}) from None
        if self.business_hours_start >= self.business_hours_end:
            raise ValidationError({"business_hours_end": "business hours must end after they start"})
        days = self.business_days
        if not isinstance(days, list) or not days or any(d not in range(7) for d in days):
            raise ValidationError({"business_days": "a non-empty list of weekdays 0 (Monday) to 6"})


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
    # Retell's x-retell-signature: "v=<unix ms>,d=<hex HMAC-SHA256 of body + ms>", keyed with
    # the Retell API key that carries the webhook badge (the secret to store here).
    RETELL = "retell", "Retell (x-retell-signature)"
    # Vapi's server secret: the x-vapi-secret header carries the configured secret itself.
    VAPI_SECRET = "vapi_secret", "Vapi server secret (x-vapi-secret)"


class ConnectorKind(models.TextChoices):
    # Tasks stored in mendhook's own database: the embedded default and the demo.
    LOCAL = "local", "Local tasks table"
    # A Clio-style REST API reached over HTTP.
    CLIO_HTTP = "clio_http", "Clio HTTP API"


def new_signing_secret() -> str:
    # The Standard Webhooks secret format: "whsec_" + base64 of 24-64 random bytes.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_secret_for_scheme(scheme: str) -> str:
    if scheme == SigningScheme.STANDARD_WEBHOOKS:
        return new_signing_secret()
    return secrets.token_hex(32)  # the bare HMAC scheme takes any string; hex is easy to paste


def secret_hint(secret: str) -> str:
    """What people may see of a secret: its kind and last four characters, enough to tell two
    apart and far too little to sign with."""
    prefix = "whsec_" if secret.startswith("whsec_") else ""
    return f"{prefix}\u2026{secret[-4:]}"


@dataclass(frozen=True)
class SigningSecret:
    """One entry of Source.signing_secret_entries. Only `ciphertext` is secret."""

    ciphertext: str
    hint: str
    created_at: datetime
    # None: valid until the next rotation. Set by a rotation: valid until then (the grace period).
    expires_at: datetime | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SigningSecret":
        expires = data.get("expires_at")
        return cls(
            ciphertext=data["ciphertext"],
            hint=data["hint"],
            created_at=_parse(data["created_at"]),
            expires_at=_parse(expires) if expires else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ciphertext": self.ciphertext,
            "hint": self.hint,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }

    def is_valid(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


def signing_secret_entries_for(*secrets: str) -> list[dict[str, Any]]:
    """Stored form of new secrets valid until rotated: for Source(signing_secret_entries=...)."""
    now = timezone.now()
    return [SigningSecret(secret_encrypt(s), secret_hint(s), now, None).to_json() for s in secrets]


def signing_secret_entries_rotated(
    entries: list[dict[str, Any]], *, secret: str, grace: timedelta, now: datetime
) -> list[dict[str, Any]]:
    """`entries` with `secret` added first and the others ending after `grace` (one ending
    sooner keeps its earlier end); expired ones are dropped. Sources and outbound endpoints
    rotate the same way."""
    ends = now + grace
    kept = [
        SigningSecret(e.ciphertext, e.hint, e.created_at, min(e.expires_at or ends, ends))
        for e in (SigningSecret.from_json(entry) for entry in entries)
    ]
    kept = [e for e in kept if e.is_valid(now)]  # a zero grace drops them at once
    fresh = SigningSecret(secret_encrypt(secret), secret_hint(secret), now, None)
    return [e.to_json() for e in [fresh, *kept]]


def signing_secrets_decrypted(entries: list[dict[str, Any]], *, now: datetime) -> list[str]:
    """The unexpired secrets of `entries`, newest first, decrypted. Raises SecretUnreadable."""
    return [secret_decrypt(e.ciphertext) for e in map(SigningSecret.from_json, entries) if e.is_valid(now)]


def _parse(value: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        raise ValueError(f"not an ISO datetime: {value!r}")
    return parsed


class Source(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="sources")
    slug = models.SlugField(max_length=100, unique=True, help_text="The URL part: /webhooks/<slug>/")
    kind = models.CharField(max_length=20, choices=SourceKind.choices, default=SourceKind.GENERIC)
    enabled = models.BooleanField(default=True)

    signing_scheme = models.CharField(
        max_length=30, choices=SigningScheme.choices, default=SigningScheme.STANDARD_WEBHOOKS
    )
    # Several secrets at once so a sender can rotate: any unexpired one verifies. Newest first;
    # each a SigningSecret (Fernet ciphertext plus what may be shown). One JSON column rather
    # than a table: the intake reads its source from a per-process cache in one query, and a
    # rotation then changes that one row, which is what invalidates the cache.
    signing_secret_entries = models.JSONField(default=list, editable=False)
    signature_header = models.CharField(
        max_length=100, default="X-Signature", help_text="Header of the HMAC-SHA256 scheme"
    )
    # The standardwebhooks library itself rejects timestamps more than 5 minutes off; a source
    # may only be stricter.
    timestamp_tolerance_seconds = models.PositiveIntegerField(default=300)
    max_payload_bytes = models.PositiveIntegerField(default=1024 * 1024)
    # Intake requests allowed, e.g. "100/second"; blank: INTAKE_RATE_LIMIT_DEFAULT. Over it the
    # sender gets 429 with Retry-After and nothing is stored (webhooks_app.rate_limits).
    rate_limit = models.CharField(
        max_length=50,
        blank=True,
        validators=[rate_limit_validate],
        help_text="Intake limit, e.g. 100/second or 6000/minute; blank: the platform default",
    )

    # Retry policy for transient failures: attempt n waits base * factor**(n-1) seconds (+ jitter).
    max_attempts = models.PositiveSmallIntegerField(default=3)
    backoff_base_seconds = models.FloatField(default=2.0)
    backoff_factor = models.FloatField(default=2.0)

    connector = models.CharField(max_length=20, choices=ConnectorKind.choices, default=ConnectorKind.LOCAL)
    connector_base_url = models.URLField(blank=True)
    # Calls to the connector allowed, e.g. "10/second"; blank: OUTBOUND_RATE_LIMITS. Work over
    # it waits for the next window without using up attempts.
    connector_rate_limit = models.CharField(
        max_length=50,
        blank=True,
        validators=[rate_limit_validate],
        help_text="Outbound limit for the connector, e.g. 10/second; blank: the platform default",
    )
    # Fernet ciphertext of the connector's API token; empty when there is none.
    connector_token_encrypted = models.TextField(blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug

    @property
    def connector_breaker_name(self) -> str:
        """The circuit breaker (and outbound rate limit) of this source's connection: each
        source is its own connection with its own token, so one account's trouble does not
        stop another's calls."""
        return f"clio:{self.slug}"

    # --- Signing secrets ------------------------------------------------------------------------

    @property
    def signing_secret_list(self) -> list[SigningSecret]:
        return [SigningSecret.from_json(entry) for entry in self.signing_secret_entries]

    def signing_secrets_valid(self, *, now: datetime) -> list[str]:
        """The secrets that verify a request at `now`, newest first. Expired ones are not even
        decrypted."""
        valid = []
        for entry in self.signing_secret_list:
            if not entry.is_valid(now):
                continue
            try:
                valid.append(secret_decrypt(entry.ciphertext))
            except SecretUnreadable:
                # A key was dropped before reencrypt_secrets ran; the rest may still verify.
                report_failure(
                    logger,
                    "signing secret %s of source %s is unreadable with the configured keys",
                    entry.hint,
                    self.slug,
                    level=logging.ERROR,
                    function="webhooks_app.models.sources.Source.signing_secrets_valid",
                    action="decrypt_secret",
                    error_code=ErrorCode.SECRET_UNREADABLE,
                    organization_id=self.organization_id,
                )
        return valid

    @property
    def signing_secrets(self) -> list[str]:
        """The secrets valid now, newest first: what a sender signs with (tests, the demo)."""
        return self.signing_secrets_valid(now=timezone.now())

    @signing_secrets.setter
    def signing_secrets(self, values: list[str]) -> None:
        """Replaces every secret (no grace period); `rotate_signing_secret` is the gentle way."""
        self.signing_secret_entries = signing_secret_entries_for(*values)

    def signing_secret_generate(self) -> str:
        return signing_secret_for_scheme(self.signing_scheme)

    def rotate_signing_secret(self, *, grace: timedelta, now: datetime) -> str:
        """Adds a new secret and lets the current ones expire after `grace`, so a sender has
        time to switch. Returns the new secret: the only time it is seen. Expired secrets are
        dropped; one expiring sooner than the grace keeps its earlier end."""
        secret = self.signing_secret_generate()
        self.signing_secret_entries = signing_secret_entries_rotated(
            self.signing_secret_entries, secret=secret, grace=grace, now=now
        )
        return secret

    # --- Connector token ----------------------------------------------------------------------

    @property
    def connector_token(self) -> str:
        if not self.connector_token_encrypted:
            return ""
        return secret_decrypt(self.connector_token_encrypted)

    @connector_token.setter
    def connector_token(self, value: str) -> None:
        self.connector_token_encrypted = secret_encrypt(value) if value else ""
