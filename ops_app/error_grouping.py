"""How occurrences group: the same place, code and message once what varies per occurrence
(numbers, ids, UUIDs) is stripped. Pure functions, safe to import before apps are ready."""

import hashlib
import re

_UUID = re.compile(r"\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b")
# Any word holding a digit: numbers, database ids, provider ids (evt_3f9a...), hex addresses.
_TOKEN_WITH_DIGIT = re.compile(r"[A-Za-z0-9_\-]*\d[A-Za-z0-9_\-]*")
_SPACES = re.compile(r"\s+")


def normalize_message(message: str) -> str:
    """The message with what varies per occurrence stripped, so occurrences group together."""
    text = _UUID.sub("<uuid>", message)
    text = _TOKEN_WITH_DIGIT.sub(lambda m: "<n>" if m.group().isdigit() else "<id>", text)
    return _SPACES.sub(" ", text).strip().lower()[:1000]


def fingerprint(*, function: str, error_code: str, message: str) -> str:
    key = "\x1f".join((function, error_code, normalize_message(message)))
    return hashlib.sha256(key.encode()).hexdigest()
