"""Real local HTTP servers standing in for third-party systems, with fault injection.

Each runs in a thread of the test process on a free port of 127.0.0.1, so a worker subprocess
reaches it over a real socket.
"""

import gzip
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Fault:
    """What the fake does instead of answering normally."""

    def __init__(
        self,
        status: int = 500,
        *,
        retry_after: str | None = None,
        delay: float = 0.0,
        drop: bool = False,
        after_create: bool = False,
    ):
        self.status = status
        self.retry_after = retry_after
        self.delay = delay  # sleep before answering: longer than the client timeout = timeout
        self.drop = drop  # close the socket without any response
        self.after_create = after_create  # create the task first, then fail (lost response)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeService:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.faults: deque[Fault] = deque()
        # Faults for requests whose headers match, e.g. one item's idempotency key.
        self.targeted: list[tuple[Callable[[dict[str, str]], bool], deque[Fault]]] = []
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "FakeService":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.faults.clear()
            self.targeted.clear()

    def fail_next(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def fail_matching(self, predicate: Callable[[dict[str, str]], bool], *faults: Fault) -> None:
        with self.lock:
            self.targeted.append((predicate, deque(faults)))

    def request_times(self, key_suffix: str) -> list[float]:
        """When each request carrying an Idempotency-Key ending in key_suffix arrived (epoch s)."""
        with self.lock:
            return [r["at"] for r in self.requests if r["headers"].get("idempotency-key", "").endswith(key_suffix)]

    def fail_key(self, key_suffix: str, *faults: Fault) -> None:
        """Fault the next requests carrying an Idempotency-Key ending in key_suffix."""
        self.fail_matching(lambda h: h.get("idempotency-key", "").endswith(key_suffix), *faults)

    def _next_fault(self, headers: dict[str, str]) -> Fault | None:
        with self.lock:
            for predicate, queue in self.targeted:
                if queue and predicate(headers):
                    return queue.popleft()
            return self.faults.popleft() if self.faults else None

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        return 200, {}, b"{}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                if headers.get("content-encoding") == "gzip":  # Sentry compresses envelopes
                    body = gzip.decompress(body)
                with service.lock:
                    service.requests.append(
                        {"method": method, "path": self.path, "headers": headers, "body": body, "at": time.time()}
                    )
                fault = service._next_fault(headers)
                if fault is not None and fault.after_create:
                    service.handle(method, self.path, headers, body)
                if fault is not None:
                    if fault.delay:
                        time.sleep(fault.delay)
                    if fault.drop:
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.connection.close()
                        self.close_connection = True
                        return
                    extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    self._reply(fault.status, extra, json.dumps({"error": "injected fault"}).encode())
                    return
                status, extra, out = service.handle(method, self.path, headers, body)
                self._reply(status, extra, out)

            def _reply(self, status: int, extra: dict[str, str], out: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): exactly what a timeout test wants

            def do_POST(self) -> None:
                self._serve("POST")

            def do_GET(self) -> None:
                self._serve("GET")

        return Handler


class FakeClio(FakeService):
    """Clio's task API: creates tasks, honours Idempotency-Key, can hold a request open."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: dict[str, dict[str, Any]] = {}  # by idempotency key
        self.creations = 0
        self.gate = threading.Event()
        self.gate.set()
        self.hold_on_request: int | None = None  # the Nth task request waits for the gate
        self.held = threading.Event()

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.tasks.clear()
            self.creations = 0
            self.hold_on_request = None
        self.gate.set()
        self.held.clear()

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if method != "POST" or not path.endswith("/api/v4/tasks.json"):
            return 404, {}, b'{"error": "not found"}'
        key = headers.get("idempotency-key", "")
        data = json.loads(body)["data"]
        with self.lock:
            task = self.tasks.get(key)
            if task is None:
                self.creations += 1
                task = {"id": 1000 + self.creations, "name": data["name"], "key": key}
                self.tasks[key] = task
            number = len([r for r in self.requests if r["method"] == "POST"])
        if self.hold_on_request is not None and number == self.hold_on_request:
            # The task exists downstream but its response has not left: the worker dies here.
            self.held.set()
            self.gate.wait(timeout=60)
        return 201, {}, json.dumps({"data": {"id": task["id"]}}).encode()


class Recorder(FakeService):
    """Records what is posted to it and answers 200: a Slack incoming webhook, Sentry's ingest."""

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        return 200, {}, b"{}"

    def bodies(self, path_contains: str = "") -> list[bytes]:
        with self.lock:
            return [r["body"] for r in self.requests if path_contains in r["path"]]
