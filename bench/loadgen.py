"""HTTP load generator: keep-alive connections driven by one selector loop, in its own process.

Run as `python -m bench.loadgen ...` by the bench. It sends precomputed raw HTTP/1.1
requests (signed by the parent before any timing starts), one in flight per connection, and
prints a JSON summary on stdout. One thread and no HTTP library keep the client's own CPU cost
per request small, which matters on a 2-core machine where the client shares the cores with the
server; the summary reports that cost (cpu_seconds) so it can be judged.

Importing Django here is not needed and not done.
"""

import argparse
import json
import os
import selectors
import socket
import struct
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PATH_PLACEHOLDER = b"{PATH}"


def write_requests(path: Path, requests: list[bytes]) -> None:
    """Length-prefixed frames: 4-byte big-endian length, then the raw request bytes."""
    with path.open("wb") as out:
        for request in requests:
            out.write(struct.pack(">I", len(request)))
            out.write(request)


def read_requests(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        pos += 4
        out.append(data[pos : pos + length])
        pos += length
    return out


def raw_request(*, host: str, headers: dict[str, str], body: bytes) -> bytes:
    """A POST with a placeholder path, filled in per target so both targets get the same bytes."""
    lines = [
        b"POST " + PATH_PLACEHOLDER + b" HTTP/1.1",
        b"Host: " + host.encode(),
        b"Content-Type: application/json",
        b"Content-Length: " + str(len(body)).encode(),
        b"User-Agent: mendhook-bench",
        *(f"{k}: {v}".encode() for k, v in headers.items()),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@dataclass
class Conn:
    sock: socket.socket
    buf: bytearray = field(default_factory=bytearray)
    sent_at: float | None = None


@dataclass
class Stats:
    warm_end: float
    end: float
    latencies: list[float] = field(default_factory=list)
    window_status: Counter[int] = field(default_factory=Counter)
    total_status: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    sent: int = 0

    def record(self, status: int, sent_at: float, done_at: float) -> None:
        self.total_status[status] += 1
        if self.warm_end <= done_at < self.end:
            self.window_status[status] += 1
            self.latencies.append(done_at - sent_at)


def _parse_response(buf: bytearray) -> tuple[int, int, bool] | None:
    """(status, bytes consumed, connection closes) for a complete response at the head of buf."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buf[:head_end]).decode("latin-1")
    lines = head.split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    closes = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "connection" and value.strip().lower() == "close":
            closes = True
        elif name == "transfer-encoding":
            raise RuntimeError("chunked responses are not expected from the bench targets")
    total = head_end + 4 + length
    if len(buf) < total:
        return None
    return status, total, closes


def run(
    *,
    host: str,
    port: int,
    requests: list[bytes],
    connections: int,
    warmup: float,
    duration: float,
    cycle: bool,
) -> dict[str, object]:
    selector = selectors.DefaultSelector()
    source: Iterator[bytes] = iter(requests)
    exhausted = False

    def next_request() -> bytes | None:
        nonlocal source, exhausted
        try:
            return next(source)
        except StopIteration:
            if not cycle:
                exhausted = True
                return None
            source = iter(requests)
            return next(source)

    def open_conn() -> Conn:
        sock = socket.create_connection((host, port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Conn(sock)
        selector.register(sock, selectors.EVENT_READ, conn)
        return conn

    def send(conn: Conn, now: float) -> bool:
        if now >= stats.end:
            return False
        request = next_request()
        if request is None:
            return False
        conn.sent_at = time.perf_counter()
        conn.sock.sendall(request)
        stats.sent += 1
        return True

    def close(conn: Conn) -> None:
        selector.unregister(conn.sock)
        conn.sock.close()

    cpu_before = os.times()
    start = time.perf_counter()
    stats = Stats(warm_end=start + warmup, end=start + warmup + duration)
    in_flight = 0
    for _ in range(connections):
        conn = open_conn()
        in_flight += send(conn, start)
    drain_deadline = stats.end + 30.0
    while in_flight and time.perf_counter() < drain_deadline:
        for key, _ in selector.select(timeout=1.0):
            conn = key.data
            try:
                chunk = conn.sock.recv(65536)
            except OSError as exc:
                chunk = b""
                stats.errors[type(exc).__name__] += 1
            now = time.perf_counter()
            if not chunk:
                # The server closed the connection (worker recycled, keep-alive timeout): a
                # request in flight on it got no answer. Reconnect and carry on.
                if conn.sent_at is not None:
                    stats.errors["closed_before_response"] += 1
                    in_flight -= 1
                close(conn)
                if now < stats.end:
                    in_flight += send(open_conn(), now)
                continue
            conn.buf += chunk
            parsed = _parse_response(conn.buf)
            if parsed is None:
                continue
            status, consumed, closes = parsed
            assert conn.sent_at is not None
            stats.record(status, conn.sent_at, now)
            del conn.buf[:consumed]
            conn.sent_at = None
            in_flight -= 1
            if closes:
                close(conn)
                if now >= stats.end:
                    continue
                conn = open_conn()
            in_flight += send(conn, now)
    cpu_after = os.times()
    stats.errors["no_response"] += in_flight
    latencies = sorted(stats.latencies)

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "duration": duration,
        "connections": connections,
        "sent": stats.sent,
        "window_status": {str(k): v for k, v in stats.window_status.items()},
        "total_status": {str(k): v for k, v in stats.total_status.items()},
        "errors": {k: v for k, v in stats.errors.items() if v},
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "exhausted": exhausted,
        "cpu_seconds": (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system),
        "wall_seconds": time.perf_counter() - start,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--requests", type=Path, required=True, help="file written by write_requests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True, help="request path, e.g. /webhooks/bench/")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--cycle", action="store_true", help="reuse requests once all were sent")
    args = parser.parse_args(argv)
    if args.host != "127.0.0.1":
        parser.error("the bench only loads 127.0.0.1")
    requests = [r.replace(PATH_PLACEHOLDER, args.path.encode(), 1) for r in read_requests(args.requests)]
    result = run(
        host=args.host,
        port=args.port,
        requests=requests,
        connections=args.connections,
        warmup=args.warmup,
        duration=args.duration,
        cycle=args.cycle,
    )
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
