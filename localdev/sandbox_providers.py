"""Stand-ins for the voice, SMS and analysis providers, so `make run` shows workflow runs in every
state and a fallback disposition without any account. config/urls.py mounts them under
/sandbox/ only when DEMO_SANDBOX is on.

The lead's phone number picks the behaviour, by its last digit: 7, both providers are down for
good (503); 9, only the voice provider is down (so an SMS goes out and the call step fails); 3,
each request fails twice with 500 and then succeeds; otherwise it works. Requests are
deduplicated by their Idempotency-Key, as the real providers do, so a re-executed step answers
with the call or message it made the first time.

The analysis endpoint answers like an OpenAI-compatible chat completion. It reads only the user
message (the transcript): the system prompt lists every disposition name. A transcript that
mentions "garbled" gets an answer that is not JSON (the fallback disposition's case).
"""

import json
import uuid

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from localdev.sandbox import sandbox_counter, sandbox_redis, scripted_failure


def _scripted(number: str, key: str, *, down_digits: str) -> JsonResponse | None:
    digits = "".join(ch for ch in number if ch.isdigit())
    if digits[-1:] and digits[-1] in down_digits:
        return scripted_failure(503, "service unavailable", matter_id=number)
    if digits.endswith("3") and sandbox_counter(f"provider:{key}") <= 2:
        return scripted_failure(500, "internal error", matter_id=number)
    return None


def _once(key: str, prefix: str) -> str:
    """The id made for `key` the first time, shared by every web process through Redis."""
    fresh = f"{prefix}{uuid.uuid4().hex[:24]}"
    if not key:
        return fresh
    store = sandbox_redis()
    name = f"mendhook:sandbox:made:{key}"
    store.set(name, fresh, nx=True, ex=86400)
    made = store.get(name)
    return made.decode() if isinstance(made, bytes) else fresh


@csrf_exempt
def create_phone_call(request: HttpRequest) -> JsonResponse:
    try:
        body = json.loads(request.body)
        to_number = str(body["to_number"])
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error_message": "to_number is required"}, status=400)
    key = request.headers.get("Idempotency-Key", "")
    failure = _scripted(to_number, key, down_digits="79")
    if failure is not None:
        return failure
    call_id = _once(key, "call_")
    return JsonResponse(
        {"call_id": call_id, "call_status": "registered", "to_number": to_number, "metadata": body.get("metadata")},
        status=201,
    )


@csrf_exempt
def create_message(request: HttpRequest, account_sid: str) -> JsonResponse:
    to_number = request.POST.get("To", "")
    if not to_number or not request.POST.get("Body"):
        return JsonResponse({"code": 21604, "message": "A 'To' phone number and a 'Body' are required."}, status=400)
    key = request.headers.get("Idempotency-Key", "") or request.headers.get("I-Twilio-Idempotency-Token", "")
    failure = _scripted(to_number, key, down_digits="7")
    if failure is not None:
        return failure
    return JsonResponse({"sid": _once(key, "SM"), "status": "queued", "to": to_number}, status=201)


# The first phrase the transcript contains wins, so the narrower ones come first.
DISPOSITION_WORDS = [
    ("not interested", "Not Interested"),
    ("wrong number", "Wrong Number"),
    ("call me back", "Callback Requested"),
    ("voicemail", "Voicemail"),
    ("interested", "Interested"),
]


@csrf_exempt
def chat_completions(request: HttpRequest) -> JsonResponse:
    try:
        body = json.loads(request.body)
        prompt = " ".join(str(m.get("content", "")) for m in body["messages"] if m.get("role") == "user").lower()
    except (ValueError, KeyError, TypeError, AttributeError):
        return JsonResponse({"error": {"message": "messages are required"}}, status=400)
    if "garbled" in prompt:
        content = "Sure! The caller seemed happy, I think?"  # not JSON: the fallback's case
    else:
        disposition = next((name for word, name in DISPOSITION_WORDS if word in prompt), "Interested")
        content = json.dumps(
            {
                "disposition": disposition,
                "confidence": 0.92,
                "reasoning": f"The caller's words match {disposition.lower()}.",
                "key_points": ["demo analysis"],
                "sentiment": "positive" if disposition == "Interested" else "neutral",
            }
        )
    return JsonResponse(
        {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "model": body.get("model", "demo"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        }
    )


urlpatterns = [
    path("retell/v2/create-phone-call", create_phone_call),
    path("twilio/2010-04-01/Accounts/<str:account_sid>/Messages.json", create_message),
    path("analysis/v1/chat/completions", chat_completions),
    path("analysis/chat/completions", chat_completions),
]
