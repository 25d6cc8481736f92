"""Signature verification for the signing schemes a source can use."""

import hashlib
import hmac
import re
import time
from collections.abc import Mapping

from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from webhooks_app.models import SigningScheme, Source


class SignatureError(Exception):
    """The request is not provably from the source. The message is safe to show the sender."""


def verify_signature(source: Source, body: bytes, headers: Mapping[str, str]) -> None:
    secrets = [s for s in source.signing_secrets_valid(now=timezone.now()) if s]
    if not secrets:
        raise SignatureError("the source has no signing secret configured")
    if source.signing_scheme == SigningScheme.STANDARD_WEBHOOKS:
        _verify_standard_webhooks(source, secrets, body, headers)
    elif source.signing_scheme == SigningScheme.RETELL:
        _verify_retell(source, secrets, body, headers)
    elif source.signing_scheme == SigningScheme.VAPI_SECRET:
        _verify_vapi_secret(secrets, headers)
    else:
        _verify_hmac_sha256(source, secrets, body, headers)


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value.strip()
    return ""


def _verify_standard_webhooks(source: Source, secrets: list[str], body: bytes, headers: Mapping[str, str]) -> None:
    lowered = {k.lower(): v for k, v in headers.items()}
    if not all(lowered.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    # The library allows five minutes either way; a source may be stricter.
    try:
        skew = abs(time.time() - float(lowered["webhook-timestamp"]))
    except ValueError:
        raise SignatureError("webhook-timestamp is not a unix timestamp") from None
    if skew > source.timestamp_tolerance_seconds:
        raise SignatureError("webhook-timestamp is outside the allowed tolerance")
    subset = {h: lowered[h] for h in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    for secret in secrets:  # several while a secret is being rotated
        try:
            Webhook(secret).verify(body, subset, json_parse=False)
        except Exception:  # noqa: BLE001, S112 - the library raises several types for bad input
            continue
        return
    raise SignatureError("no signature matches")


def _verify_hmac_sha256(source: Source, secrets: list[str], body: bytes, headers: Mapping[str, str]) -> None:
    # No maintained library covers this scheme (a bare hex HMAC of the body); it is five lines.
    given = ""
    for name, value in headers.items():
        if name.lower() == source.signature_header.lower():
            given = value.strip()
    given = given.removeprefix("sha256=")
    if not given:
        raise SignatureError(f"missing {source.signature_header} header")
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, given.lower()):
            return
    raise SignatureError("no signature matches")


RETELL_HEADER = "x-retell-signature"
_RETELL_SIGNATURE = re.compile(r"v=(\d+),d=([0-9a-fA-F]+)")


def _verify_retell(source: Source, secrets: list[str], body: bytes, headers: Mapping[str, str]) -> None:
    # What retell-sdk's verify() does (RetellAI/retell-python-sdk src/retell/lib/webhook_auth.py,
    # "symmetric"): the header is "v=<unix ms>,d=<digest>", the digest the hex HMAC-SHA256 keyed
    # with the API key over the body followed by the decimal timestamp; the SDK allows 5 minutes
    # either way, a source may be stricter. Bytes, not text: the body is verified as sent.
    given = _header(headers, RETELL_HEADER)
    if not given:
        raise SignatureError(f"missing {RETELL_HEADER} header")
    match = _RETELL_SIGNATURE.fullmatch(given)
    if match is None:
        raise SignatureError(f"{RETELL_HEADER} is not of the form v=<unix ms>,d=<hex digest>")
    stamp, digest = match.group(1), match.group(2).lower()
    if abs(time.time() * 1000 - int(stamp)) > source.timestamp_tolerance_seconds * 1000:
        raise SignatureError(f"the {RETELL_HEADER} timestamp is outside the allowed tolerance")
    for secret in secrets:
        if hmac.compare_digest(sign_retell_digest(secret, body, stamp), digest):
            return
    raise SignatureError("no signature matches")


def sign_retell_digest(secret: str, body: bytes, stamp: str) -> str:
    return hmac.new(secret.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()


VAPI_SECRET_HEADER = "x-vapi-secret"  # noqa: S105 - a header name, not a secret


def _verify_vapi_secret(secrets: list[str], headers: Mapping[str, str]) -> None:
    # Vapi's server secret (docs.vapi.ai, server authentication) is sent verbatim in a header:
    # nothing signs the body, so TLS carries the trust; compared in constant time. Vapi's HMAC
    # credential (secret, SHA256, header x-vapi-signature, body-only payload, hex) is the
    # hmac_sha256 scheme with signature_header "x-vapi-signature".
    given = _header(headers, VAPI_SECRET_HEADER)
    if not given:
        raise SignatureError(f"missing {VAPI_SECRET_HEADER} header")
    for secret in secrets:
        if hmac.compare_digest(secret.encode(), given.encode()):
            return
    raise SignatureError(f"{VAPI_SECRET_HEADER} does not match the source's secret")


def sign_hmac_sha256(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
