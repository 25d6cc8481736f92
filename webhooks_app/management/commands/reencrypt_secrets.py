"""Re-encrypt every stored signing secret and connector token under the first key of
SECRETS_ENCRYPTION_KEYS: the middle step of a key rotation (webhooks_app/encryption.py)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from webhooks_app.encryption import SecretUnreadable
from webhooks_app.services.sources import sources_reencrypt


class Command(BaseCommand):
    help = "Re-encrypt stored secrets and tokens under the first SECRETS_ENCRYPTION_KEYS key."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = sources_reencrypt()
        except SecretUnreadable as exc:
            raise CommandError(f"{exc}; keep the old key listed until this command has run") from None
        self.stdout.write(f"re-encrypted the secrets of {count} source(s) under the first key")
