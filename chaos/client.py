"""A provider's delivery client: signs each event (Standard Webhooks) and retries 5xx, 429 and
transport errors with backoff, re-signing the same message id, as Stripe or Svix would."""

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook


@dataclass
class Deliveries:
    sent: int = 0
    accepted: dict[str, str] = field(default_factory=dict)  # webhook-id -> event id from a 2xx
    rejected: dict[str, str] = field(default_factory=dict)  # webhook-id -> a 4xx answer
    gave_up: list[str] = field(default_factory=list)
    retries: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def matter_event(number: int) -> dict[str, object]:
    return {
        "id": f"evt_chaos_{number}",
        "type": "matter.stage_changed",
        # A matter per event, so the downstream tasks of each event can be counted apart.
        "data": {"matter_id": f"chaos-{number}", "stage": "consultation", "location": "miami"},
    }


class Provider:
    def __init__(self, *, url: str, secret: str, threads: int, give_up_after: float) -> None:
        self.url = url
        self.webhook = Webhook(secret)
        self.threads = threads
        self.give_up_after = give_up_after
        self.result = Deliveries()
        self._work: queue.Queue[tuple[int, str] | None] = queue.Queue()
        self._pool = [threading.Thread(target=self._deliver_loop, daemon=True) for _ in range(threads)]

    def start(self) -> None:
        for thread in self._pool:
            thread.start()

    def send(self, number: int) -> None:
        self._work.put((number, f"msg_{uuid.uuid4().hex}"))

    def finish(self) -> Deliveries:
        for _ in self._pool:
            self._work.put(None)
        for thread in self._pool:
            thread.join()
        return self.result

    def _deliver_loop(self) -> None:
        with httpx.Client(timeout=10) as client:
            while (job := self._work.get()) is not None:
                self._deliver(client, *job)

    def _deliver(self, client: httpx.Client, number: int, msg_id: str) -> None:
        body = json.dumps(matter_event(number))
        deadline = time.monotonic() + self.give_up_after
        delay = 0.5
        with self.result.lock:
            self.result.sent += 1
        while True:
            # Each delivery attempt is signed afresh, with the same message id.
            now = datetime.now(tz=UTC)
            headers = {
                "content-type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": self.webhook.sign(msg_id, now, body),
            }
            try:
                response = client.post(self.url, content=body, headers=headers)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code < 300:
                with self.result.lock:
                    self.result.accepted[msg_id] = response.json()["id"]
                return
            if response is not None and 400 <= response.status_code < 500 and response.status_code != 429:
                with self.result.lock:
                    self.result.rejected[msg_id] = f"{response.status_code} {response.text[:200]}"
                return
            if time.monotonic() > deadline:
                with self.result.lock:
                    self.result.gave_up.append(msg_id)
                return
            with self.result.lock:
                self.result.retries += 1
            time.sleep(delay)
            delay = min(delay * 2, 8.0)
