"""API keys: how REST clients (dashboards, other services) prove which organization they act for.

Only a SHA-256 of each key is stored; the key itself is shown once, when it is made. A short,
non-secret prefix names the key in lists, logs and audit records.
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q

from webhooks_app.models.sources import Organization

# "mhk_" makes a leaked key recognisable to secret scanners and people alike.
KEY_MARK = "mhk_"
# 48 bits: unique among any number of keys an installation will make (the unique constraint
# guards the rest), short enough to read out.
PREFIX_BYTES = 6
SECRET_BYTES = 32
# last_used_at is a hint for people ("is this key still used?"), not an access log: writing it
# on every request would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_key(raw_key: str) -> str:
    # A plain digest is enough: the key holds 256 random bits, so there is nothing to brute-force
    # and no need for a slow password hash (which would cost on every request).
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> "ApiKeyQuerySet":
        return self.filter(revoked_at__isnull=True)

    def for_raw_key(self, raw_key: str) -> "ApiKey | None":
        """The active key matching what a client sent, or None."""
        if not raw_key.startswith(KEY_MARK):
            return None
        return self.active().select_related("organization").filter(key_hash=hash_key(raw_key)).first()


class ApiKey(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, help_text="What uses the key, e.g. 'Grafana dashboard'")
    prefix = models.CharField(max_length=20, unique=True, editable=False, help_text="Not secret: names the key")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["organization", "-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def set_new_key(self) -> str:
        """Give an unsaved key its secret; returns the raw key, which exists nowhere else once
        the caller has shown it."""
        self.prefix = KEY_MARK + secrets.token_hex(PREFIX_BYTES)
        raw_key = f"{self.prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
        self.key_hash = hash_key(raw_key)
        return raw_key

    @classmethod
    def issue(cls, *, organization: Organization, name: str, created_by_id: int | None = None) -> tuple["ApiKey", str]:
        key = cls(organization=organization, name=name, created_by_id=created_by_id)
        raw_key = key.set_new_key()
        key.save()
        return key, raw_key

    def revoke(self, *, now: datetime) -> None:
        if self.revoked_at is None:
            self.revoked_at = now
            self.save(update_fields=["revoked_at"])

    def touch(self, *, now: datetime) -> None:
        """Record use, at most once per LAST_USED_RESOLUTION. The conditional UPDATE keeps
        concurrent requests from all writing when the minute turns."""
        stale = now - LAST_USED_RESOLUTION
        if self.last_used_at is not None and self.last_used_at > stale:
            return
        ApiKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale), id=self.id).update(
            last_used_at=now
        )
        self.last_used_at = now
