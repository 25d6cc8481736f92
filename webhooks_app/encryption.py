"""Secrets at rest: signing secrets and connector tokens are stored as Fernet tokens.

Keys come from SECRETS_ENCRYPTION_KEYS (comma-separated Fernet keys). The first key encrypts;
every key decrypts, which is how a key is rotated: put the new key first, run
`manage.py reencrypt_secrets`, then drop the old key. Without the variable (make run, tests) the
key is derived from SECRET_KEY with HKDF. That derived key is always tried last when decrypting,
so an installation that starts setting SECRETS_ENCRYPTION_KEYS keeps reading what it stored
before, until `reencrypt_secrets` has moved it to the new key.
"""

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

# Separates this key from anything else that might ever be derived from SECRET_KEY.
_HKDF_INFO = b"mendhook secrets at rest v1"


class SecretUnreadable(Exception):
    """A stored secret was encrypted with a key that is no longer configured."""


def _derived_key(secret_key: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    derived = Fernet(_derived_key(secret_key))
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key.encode()))
        except ValueError:
            # The key itself must not end up in a log line, only where it sits in the list.
            raise ImproperlyConfigured(
                f"SECRETS_ENCRYPTION_KEYS: key {position} is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    # Decrypt-only unless it is the only key (see the module docstring).
    return MultiFernet([*fernets, derived])


def _current() -> MultiFernet:
    # Keyed on the settings so that a test's override_settings takes effect.
    keys = tuple(k.strip() for k in settings.SECRETS_ENCRYPTION_KEYS if k.strip())
    return _fernet(keys, settings.SECRET_KEY)


def secret_encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def secret_decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("no configured key decrypts this secret (see SECRETS_ENCRYPTION_KEYS)") from None


def secret_reencrypt(token: str) -> str:
    """The same secret under the first (current) key."""
    try:
        return _current().rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("no configured key decrypts this secret (see SECRETS_ENCRYPTION_KEYS)") from None


# How to make a key, for the deploy check's hint and the README.
KEY_COMMAND = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


@checks.register(checks.Tags.security)
def encryption_keys_check(**kwargs: object) -> list[checks.CheckMessage]:
    """A malformed key fails at start-up, not at the first secret written."""
    try:
        _current()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="mendhook.E001")]
    return []


@checks.register(checks.Tags.security, deploy=True)
def encryption_keys_deploy_check(**kwargs: object) -> list[checks.CheckMessage]:
    # A key derived from SECRET_KEY ties every stored secret to SECRET_KEY, and one leak to both.
    if settings.SECRETS_ENCRYPTION_KEYS:
        return []
    message = "SECRETS_ENCRYPTION_KEYS is not set: secrets at rest use a key derived from SECRET_KEY"
    return [checks.Warning(message, hint=f"Make a key with: {KEY_COMMAND}", id="mendhook.W001")]
