"""Fakes for call analysis and SMS, as real local HTTP servers (tests/support/fake_http.py):
an OpenAI-compatible chat-completions endpoint and a Twilio-style Messages resource."""

import json
from typing import Any

from tests.support.fake_http import FakeService


class FakeAnalysis(FakeService):
    """POST /v1/chat/completions. Answers `answer` as the message content (JSON), or `raw` as
    is when set (a model that ignores the JSON instruction)."""

    def __init__(self) -> None:
        super().__init__()
        self.answer: dict[str, Any] = {}
        self.raw: str | None = None

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.answer = {}
            self.raw = None

    def answer_with(self, disposition: str, *, confidence: float = 0.9, sentiment: str = "positive") -> None:
        with self.lock:
            self.answer = {
                "disposition": disposition,
                "confidence": confidence,
                "reasoning": "The lead asked for a follow-up.",
                "key_points": ["interested", "wants pricing"],
                "sentiment": sentiment,
            }

    def completions(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests if r["path"].endswith("/chat/completions")]

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if method != "POST" or not path.endswith("/v1/chat/completions"):
            return 404, {}, b'{"error": "not found"}'
        with self.lock:
            content = self.raw if self.raw is not None else json.dumps(self.answer)
        reply = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        }
        return 200, {}, json.dumps(reply).encode()
