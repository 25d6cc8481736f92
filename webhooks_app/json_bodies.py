"""Reading an untrusted webhook body into a JSON object PostgreSQL's jsonb can hold.

What each hostile class gets (docs/architecture.md, "Hostile bodies"):

- not UTF-8 (RFC 8259 requires it): 400 `invalid_encoding`;
- not JSON, `NaN`/`Infinity`, a number beyond a double, an integer longer than Python's
  4,300-digit limit, or JSON that is not an object: 400 `invalid_json`;
- nesting deeper than MAX_DEPTH: 422 `too_deep`;
- `\\u0000` and unpaired surrogates: valid JSON text that jsonb cannot hold. Stored, with each
  such code point replaced by U+FFFD in the payload; the event keeps the raw body byte for byte,
  so the replacement loses nothing.
"""

import json
import math
import re
from typing import Any

# Real payloads nest a handful of levels; Python's parser gives up near 1,000 and jsonb's
# stack earlier. Well below both, so the limit is ours and named in the answer.
MAX_DEPTH = 64
REPLACEMENT = "\ufffd"
# What jsonb (and PostgreSQL text) refuses: NUL, and surrogates, which only a lone \\uD8xx escape
# can produce (a paired one decodes to a single code point).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class BodyError(Exception):
    """The body cannot become an event. The message names the problem and is safe to show."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def body_text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(
            400, "invalid_encoding", f"body is not UTF-8 (byte {exc.start}: {exc.reason}); JSON must be sent as UTF-8"
        ) from None


def _no_constants(name: str) -> Any:
    raise BodyError(400, "invalid_json", f"{name} is not JSON (RFC 8259 has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BodyError(400, "invalid_json", f"number {text[:40]} is beyond the range of a double")
    return value


def body_parse(text: str) -> dict[str, Any]:
    """The JSON object in `text`, exactly as sent (see payload_storable for storing it)."""
    try:
        payload = json.loads(text, parse_constant=_no_constants, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise BodyError(400, "invalid_json", f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BodyError(422, "too_deep", f"JSON nests deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        # The only other ValueError json raises: int() refusing more than sys.int_info's digits.
        raise BodyError(400, "invalid_json", "body holds an integer longer than 4300 digits") from None
    if not isinstance(payload, dict):
        raise BodyError(400, "invalid_json", "body must be a JSON object")
    if _may_nest_deeper(text) and _depth(payload) > MAX_DEPTH:
        raise BodyError(422, "too_deep", f"JSON nests deeper than {MAX_DEPTH} levels")
    return payload


def _may_nest_deeper(text: str) -> bool:
    # Cheap test first: fewer brackets than the limit cannot nest past it.
    return text.count("{") + text.count("[") > MAX_DEPTH


def _depth(payload: dict[str, Any]) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(payload, 1)]  # iterative: the input chooses the depth
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def text_storable(text: str) -> str:
    return UNSTORABLE.sub(REPLACEMENT, text)


def payload_storable(payload: dict[str, Any], text: str) -> bool:
    """Replace, in place, what jsonb cannot hold in keys and strings; True if anything changed.

    Two keys differing only there end as one key: the raw body still has both.
    """
    if "\\u" not in text:  # NUL and lone surrogates can only arrive as \\u escapes
        return False
    changed = False
    stack: list[dict[str, Any] | list[Any]] = [payload]
    while stack:
        node = stack.pop()
        slots: list[Any] = list(node) if isinstance(node, dict) else list(range(len(node)))
        for slot in slots:
            value = node[slot]
            if isinstance(value, str) and UNSTORABLE.search(value):
                node[slot] = text_storable(value)
                changed = True
            elif isinstance(value, dict | list):
                stack.append(value)
            if isinstance(node, dict) and UNSTORABLE.search(slot):
                node[text_storable(slot)] = node.pop(slot)
                changed = True
    return changed
