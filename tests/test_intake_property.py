"""A property of the intake, checked on random and hostile requests (Hypothesis): every answer
is 2xx or 4xx JSON, a rejected request stores nothing, an accepted one is stored exactly once,
and sending it again answers "duplicate" without a second row."""

import json
import os
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from tests.factories import SourceFactory
from tests.support.signing import standard_headers_for_bytes
from webhooks_app.json_bodies import MAX_DEPTH
from webhooks_app.models import Source, WebhookEvent

# Bounded so `make test` stays fast; fixed examples under CI so a red build is reproducible.
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("INTAKE_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),  # includes NUL; never a lone surrogate (Python cannot encode one)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=6)


@st.composite
def valid_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    payload = draw(json_objects)
    return json.dumps(payload, ensure_ascii=draw(st.booleans())).encode(), "object"


def _nested(levels: int) -> bytes:
    return b'{"a": ' * levels + b"1" + b"}" * levels


hostile_bodies = st.one_of(
    st.sampled_from(
        [
            b'{"v": NaN}',
            b'{"v": Infinity}',
            b'{"v": -Infinity}',
            b'{"v": 1e400}',
            b'{"v": "a\\u0000b"}',
            b'{"a\\u0000": 1}',
            b'{"v": "\\ud800"}',
            b'{"v": "x\\udfff"}',
            b'{"type": "' + b"t" * 300 + b'"}',
            b"[1, 2]",
            b'"text"',
            b"null",
            b"",
            b"\xef\xbb\xbf{}",  # a UTF-8 byte-order mark
            '{"n": "Müller"}'.encode("latin-1"),
            "{}".encode("utf-16"),
        ]
    ),
    st.integers(min_value=4200, max_value=4400).map(lambda n: b'{"n": ' + b"9" * n + b"}"),
    st.integers(min_value=MAX_DEPTH - 2, max_value=MAX_DEPTH + 2).map(_nested),
    st.integers(min_value=900, max_value=3000).map(_nested),
    st.binary(max_size=64),
).map(lambda body: (body, "hostile"))

timestamps = st.one_of(
    st.just("now"),
    st.sampled_from(["stale", "future", "nan", "inf", "-1", "", "abc", "1e99"]),
)
content_types = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "application/cloudevents+json", "text/plain", ""]
)
signatures = st.sampled_from(["valid", "valid", "valid", "wrong", "missing"])
message_ids = st.one_of(st.uuids().map(lambda u: f"msg_{u.hex}"), st.text(min_size=1, max_size=300))
slugs = st.one_of(
    st.sampled_from(["{slug}/", "{slug}/", "{slug}", "{slug}/extra/", "nope/"]),
    st.text(max_size=12).map(lambda text: text + "/"),
)


def _timestamp(kind: str) -> str:
    now = int(time.time())
    return {"now": str(now), "stale": str(now - 3600), "future": str(now + 3600)}.get(kind, kind)


class IntakePropertyTest(TestCase):  # each example runs in its own rolled-back transaction
    source: Source

    @classmethod
    def setUpTestData(cls) -> None:
        cls.source = SourceFactory()

    def post(self, path: str, body: bytes, content_type: str, headers: dict[str, str]):
        return self.client.post(path, data=body, content_type=content_type, headers=headers)

    @PROPERTY_SETTINGS
    @given(
        body=st.one_of(valid_bodies(), hostile_bodies),
        timestamp=timestamps,
        content_type=content_types,
        signature=signatures,
        msg_id=message_ids,
        slug=slugs,
    )
    def test_every_answer_is_a_json_decision_and_accepted_events_are_stored_once(
        self, body, timestamp, content_type, signature, msg_id, slug
    ):
        payload_bytes, kind = body
        secret = self.source.signing_secrets[0]
        headers = standard_headers_for_bytes(secret, payload_bytes, msg_id=msg_id, timestamp=_timestamp(timestamp))
        if signature == "wrong":
            headers["webhook-signature"] = "v1,bm90LXRoZS1zaWduYXR1cmU="
        elif signature == "missing":
            del headers["webhook-signature"]
        path = "/webhooks/" + slug.replace("{slug}", self.source.slug)
        before = WebhookEvent.objects.count()

        response = self.post(path, payload_bytes, content_type, headers)

        assert 200 <= response.status_code < 300 or 400 <= response.status_code < 500, response.content
        assert response["Content-Type"] == "application/json"
        answer = response.json()
        stored = WebhookEvent.objects.count() - before
        if response.status_code >= 400:
            assert isinstance(answer["error"]["code"], str) and answer["error"]["message"], answer
            assert stored == 0
            if (
                kind == "object"
                and signature == "valid"
                and timestamp == "now"
                and content_type != "text/plain"
                and content_type
                and slug in ("{slug}/", "{slug}")
            ):
                raise AssertionError(f"a valid, signed object was rejected: {answer}")
            return
        if response.status_code == 200:  # a message id drawn twice in one example run
            assert answer["duplicate"] is True and stored == 0
            return

        assert response.status_code == 202
        assert answer["duplicate"] is False and stored == 1
        event = WebhookEvent.objects.get(id=answer["id"])
        assert bytes(event.raw_body) == payload_bytes

        again = self.post(path, payload_bytes, content_type, headers)

        assert again.status_code == 200, again.content
        assert again.json() == {**answer, "duplicate": True}
        assert WebhookEvent.objects.count() == before + 1
