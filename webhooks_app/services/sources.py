"""Writes to sources that people ask for: rotating a signing secret."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webhooks_app.encryption import secret_reencrypt
from webhooks_app.models import Source


def signing_secret_grace() -> timedelta:
    return timedelta(hours=settings.MENDHOOK_SIGNING_SECRET_GRACE_HOURS)


def source_secret_rotate(*, source_id: int, grace: timedelta | None = None) -> str:
    """A new signing secret for the source, returned once; the current ones keep verifying
    for `grace` (SIGNING_SECRET_GRACE_HOURS by default)."""
    with transaction.atomic():
        # Locked: two rotations at once must not each drop the other's new secret.
        source = Source.objects.select_for_update().get(id=source_id)
        secret = source.rotate_signing_secret(
            grace=signing_secret_grace() if grace is None else grace, now=timezone.now()
        )
        # save() (not update()) so post_save tells the intake's source cache at once.
        source.save(update_fields=["signing_secret_entries"])
    return secret


def sources_reencrypt() -> int:
    """Re-encrypts every stored secret and token under the first configured key; returns how
    many sources were rewritten. Safe to run again, and while traffic flows."""
    done = 0
    for source_id in Source.objects.order_by("id").values_list("id", flat=True).iterator():
        with transaction.atomic():
            source = Source.objects.select_for_update().get(id=source_id)
            source.signing_secret_entries = [
                {**entry, "ciphertext": secret_reencrypt(entry["ciphertext"])}
                for entry in source.signing_secret_entries
            ]
            if source.connector_token_encrypted:
                source.connector_token_encrypted = secret_reencrypt(source.connector_token_encrypted)
            source.save(update_fields=["signing_secret_entries", "connector_token_encrypted"])
        done += 1
    return done
