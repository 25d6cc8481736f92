"""Call analysis through an OpenAI-compatible chat-completions endpoint (ANALYSIS_BASE_URL):
the model reads the transcript and picks one of the organization's dispositions.

Every way this can fail (transport, timeout, HTTP status, a reply that is not the JSON asked
for, a disposition the organization does not have) raises AnalysisFailed with a catalogue code;
the caller falls back to the seed's duration rule."""

import json
import threading
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema
from django.conf import settings
from jsonschema.exceptions import best_match

from webhooks_app.breakers import breaker_call
from webhooks_app.errors import ErrorCode, ProcessingError

SENTIMENTS = ["positive", "neutral", "negative"]

_local = threading.local()


def _client() -> httpx.Client:
    # One pooled client per thread of each worker process, created after the prefork fork.
    client = getattr(_local, "client", None)
    if client is None:
        client = httpx.Client()
        _local.client = client
    return client


@dataclass(frozen=True)
class Analysis:
    disposition: str
    confidence: float
    reasoning: str
    key_points: list[str]
    sentiment: str

    def as_json(self) -> dict[str, Any]:
        return {
            "disposition": self.disposition,
            "confidence": self.confidence,
            "reasoning": self.reasoning,
            "key_points": self.key_points,
            "sentiment": self.sentiment,
        }


class AnalysisFailed(Exception):
    def __init__(self, message: str, *, code: ErrorCode) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def answer_schema(dispositions: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "disposition": {"enum": dispositions},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "reasoning": {"type": "string"},
            "key_points": {"type": "array", "items": {"type": "string"}},
            "sentiment": {"enum": SENTIMENTS},
        },
        "required": ["disposition", "confidence", "reasoning", "key_points", "sentiment"],
    }


def _prompt(dispositions: list[str], duration_seconds: float | None) -> str:
    return (
        "You classify the outcome of a sales or intake phone call from its transcript. "
        "Answer with one JSON object and nothing else, with the keys: "
        '"disposition" (exactly one of: ' + json.dumps(dispositions) + "), "
        '"confidence" (a number from 0 to 1), "reasoning" (one or two sentences), '
        '"key_points" (a list of short strings), "sentiment" (one of "positive", "neutral", '
        '"negative"). '
        f"The call lasted {duration_seconds if duration_seconds is not None else 'an unknown number of'} seconds."
    )


def _content(response: httpx.Response) -> str:
    try:
        body = response.json()
        content = body["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise AnalysisFailed(
            "the analysis endpoint answered without choices[0].message.content", code=ErrorCode.VALIDATION
        ) from None
    if not isinstance(content, str):
        raise AnalysisFailed("the analysis answer's content is not text", code=ErrorCode.VALIDATION)
    return content


SYSTEM = "analysis"


def _post(url: str, request: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    """One request; outages raise the codes the breaker counts (timeouts, connections, 5xx)."""
    try:
        response = _client().post(url, json=request, headers=headers, timeout=settings.ANALYSIS_TIMEOUT_SECONDS)
    except httpx.TimeoutException as exc:
        raise ProcessingError(f"the analysis endpoint timed out: {exc!r}", code=ErrorCode.TIMEOUT) from exc
    except httpx.TransportError as exc:
        raise ProcessingError(f"the analysis endpoint is unreachable: {exc!r}", code=ErrorCode.CONNECTION) from exc
    if response.status_code == 429:
        raise ProcessingError("the analysis endpoint rate-limited the request (429)", code=ErrorCode.RATE_LIMITED)
    if response.status_code >= 500:
        raise ProcessingError(f"the analysis endpoint failed: {response.status_code}", code=ErrorCode.PROVIDER_FAILED)
    if response.status_code >= 400:
        raise ProcessingError(
            f"the analysis endpoint refused the request: {response.status_code}", code=ErrorCode.DOWNSTREAM_REJECTED
        )
    return response


def analysis_request(*, transcript: str, duration_seconds: float | None, dispositions: list[str]) -> Analysis:
    """Ask the model once. Raises AnalysisFailed; never retries (the fallback is the answer to a
    failure, and a redelivered webhook does not ask again once the call has an analysis)."""
    base_url = settings.ANALYSIS_BASE_URL.rstrip("/")
    if not base_url:
        raise AnalysisFailed("no analysis endpoint is configured (ANALYSIS_BASE_URL)", code=ErrorCode.VALIDATION)
    headers = {"Authorization": f"Bearer {settings.ANALYSIS_API_KEY}"} if settings.ANALYSIS_API_KEY else {}
    request = {
        "model": settings.ANALYSIS_MODEL,
        "temperature": 0,
        "response_format": {"type": "json_object"},
        "messages": [
            {"role": "system", "content": _prompt(dispositions, duration_seconds)},
            {"role": "user", "content": transcript},
        ],
    }
    try:
        # Through the analysis endpoint's breaker, shared by every worker: while it is down,
        # calls fail fast (and the call gets the fallback disposition at once).
        response = breaker_call(SYSTEM, _post, f"{base_url}/chat/completions", request, headers)
    except ProcessingError as exc:
        raise AnalysisFailed(exc.message, code=exc.code) from exc
    content = _content(response)
    try:
        answer = json.loads(content)
    except ValueError:
        raise AnalysisFailed(f"the analysis answer is not JSON: {content[:200]!r}", code=ErrorCode.VALIDATION) from None
    error = best_match(jsonschema.Draft202012Validator(answer_schema(dispositions)).iter_errors(answer))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "answer"
        raise AnalysisFailed(f"the analysis answer is unusable: {where}: {error.message}", code=ErrorCode.VALIDATION)
    return Analysis(
        disposition=answer["disposition"],
        confidence=float(answer["confidence"]),
        reasoning=answer["reasoning"],
        key_points=[str(p) for p in answer["key_points"]],
        sentiment=answer["sentiment"],
    )
