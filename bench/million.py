"""1,000,000 events: the admin's events list and dashboard, and the REST API's delivery stats
and queue health, timed over real HTTP beside the no-op view on the same gunicorn. The events
come from bench/million_seed.py.

Django is set up by __main__ before this module is imported.
"""

import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx
from django.core.cache import caches
from django.db import connections

from bench import infra
from bench.infra import BenchFailure
from bench.million_seed import ADMIN_PASSWORD, ADMIN_USER, ALIAS, ORGANIZATIONS, TABLE, credentials, events_count
from webhooks_app.models.events import ACTIONABLE

# --- Timing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    path: str
    median_ms: float
    p95_ms: float
    max_ms: float
    samples: int
    body_bytes: int


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def timed(
    client: httpx.Client,
    path: str,
    *,
    warmup: int,
    samples: int,
    headers: dict[str, str] | None = None,
    before: Callable[[], None] | None = None,
    check: Callable[[httpx.Response], None] | None = None,
) -> Latency:
    """Sequential GETs on one keep-alive connection; each timed from send to the last byte."""
    times: list[float] = []
    size = 0
    for n in range(warmup + samples):
        if before is not None:
            before()
        began = time.perf_counter()
        response = client.get(path, headers=headers)
        elapsed = time.perf_counter() - began
        if response.status_code != 200:
            raise BenchFailure(f"GET {path}: {response.status_code} {response.text[:500]}")
        if check is not None:
            check(response)
        if n >= warmup:
            times.append(elapsed * 1000)
            size = len(response.content)
    return Latency(path, statistics.median(times), _p95(times), max(times), len(times), size)


def login(client: httpx.Client) -> None:
    page = client.get("/admin/login/?next=/admin/")
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if page.status_code != 200 or not match:
        raise BenchFailure(f"admin login page: {page.status_code}, no CSRF token")
    answer = client.post(
        "/admin/login/?next=/admin/",
        data={
            "csrfmiddlewaretoken": match.group(1),
            "username": ADMIN_USER,
            "password": ADMIN_PASSWORD,
            "next": "/admin/",
        },
    )
    if answer.status_code != 302 or "sessionid" not in client.cookies:
        raise BenchFailure(f"admin login failed: {answer.status_code} {answer.text[:300]}")


def _contains(*needles: str) -> Callable[[httpx.Response], None]:
    def check(response: httpx.Response) -> None:
        for needle in needles:
            if needle not in response.text:
                raise BenchFailure(f"{response.request.url}: the page does not contain {needle!r}")

    return check


@dataclass(frozen=True)
class MillionFigures:
    baseline: Latency
    pages: dict[str, Latency]
    checks: list[str]
    notes: list[str]


EVENTS_LIST = "/admin/webhooks_app/webhookevent/"
# The dashboard's error-code link (ops_app.dashboard): events still failing with the code.
CODE_LINK = f"{EVENTS_LIST}?error_code=ERR_ASSIGNEE_NO_CSC&status__in={','.join(ACTIONABLE)}&received=7d"


def _one_event_id() -> str:
    """A recent partial failure of the main organization, with its ten items."""
    with connections[ALIAS].cursor() as cursor:
        cursor.execute(
            f"SELECT e.id FROM {TABLE} e JOIN webhooks_app_organization o ON o.id = e.organization_id "  # noqa: S608
            "WHERE o.slug = %s AND e.status = 'partial_failure' AND e.received_at > now() - interval '1 day' "
            "ORDER BY e.received_at DESC LIMIT 1",
            [ORGANIZATIONS[0][0]],
        )
        row = cursor.fetchone()
    if row is None:
        raise BenchFailure("million: no recent partial failure to open")
    return str(row[0])


def _window_count(organization_id: int, start: datetime, end: datetime) -> int:
    with connections[ALIAS].cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {TABLE} WHERE organization_id = %s AND received_at >= %s AND received_at < %s",  # noqa: S608
            [organization_id, start, end],
        )
        return int(cursor.fetchone()[0])


def measure(*, database_url: str, warmup: int, samples: int, note: str, log: Callable[[str], None]) -> MillionFigures:
    organization_id, raw_key = credentials()
    event_id = _one_event_id()
    api = {"Authorization": f"Bearer {raw_key}"}
    cache = caches["api"]
    checks: list[str] = []
    notes = [note]
    # gunicorn and a worker of the product, on the million database and the bench Redis db.
    env = {"DATABASE_URL": database_url}
    infra.redis_clean()
    worker = infra.start_worker("million", env=env)
    try:
        server, port = infra.start_gunicorn(env=env)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                pages: dict[str, Latency] = {}
                log(f"million: {warmup} warm-up + {samples} measured sequential GETs per page, one connection")
                baseline = timed(client, "/bench/noop/", warmup=warmup, samples=samples)
                login(client)
                admin_pages = {
                    "events list": (EVENTS_LIST, _contains('id="result_list"', "mh-badge")),
                    "events list, status partial failure": (
                        f"{EVENTS_LIST}?status__exact=partial_failure",
                        _contains('id="result_list"', "mh-partial_failure"),
                    ),
                    "events list, received last 7 days": (
                        f"{EVENTS_LIST}?received=7d",
                        _contains('id="result_list"', "mh-badge"),
                    ),
                    "events list, dashboard code link (code + still failing + 7 days)": (
                        CODE_LINK,
                        _contains('id="result_list"', "ERR_ASSIGNEE_NO_CSC"),
                    ),
                    "event page (partial failure, 10 items)": (
                        f"{EVENTS_LIST}{event_id}/change/",
                        _contains("Item ledger", "ERR_"),
                    ),
                    "dashboard (admin home)": ("/admin/", _contains("Partial failures", "ERR_ASSIGNEE_NO_CSC")),
                }
                for name, (path, check) in admin_pages.items():
                    log(f"  {name}: GET {path}")
                    pages[name] = timed(client, path, warmup=warmup, samples=samples, check=check)

                def forget(time_range: str) -> Callable[[], None]:
                    key = f"delivery-stats:{organization_id}:{time_range}"

                    def clear() -> None:
                        cache.delete(key)

                    return clear

                for time_range in ("24h", "7d", "30d"):
                    path = f"/api/v1/delivery-stats?range={time_range}"
                    log(f"  delivery stats {time_range}, cache cleared before each request: GET {path}")
                    pages[f"delivery-stats {time_range} cold"] = timed(
                        client, path, warmup=warmup, samples=samples, headers=api, before=forget(time_range)
                    )
                path = "/api/v1/delivery-stats?range=30d"
                log(f"  delivery stats 30d, cached (what a polling client gets within 30 s): GET {path}")
                pages["delivery-stats 30d warm"] = timed(client, path, warmup=warmup, samples=samples, headers=api)
                if cache.get(f"delivery-stats:{organization_id}:30d") is None:
                    raise BenchFailure("delivery-stats 30d left no cache entry: the cold/warm split measures nothing")
                log("  queue health: GET /api/v1/queue-health")
                pages["queue-health"] = timed(
                    client, "/api/v1/queue-health", warmup=warmup, samples=samples, headers=api
                )

                # The figures are about the right data: the API counts what SQL counts.
                stats = client.get("/api/v1/delivery-stats?range=30d", headers=api).json()
                start, end = (datetime.fromisoformat(stats[k].replace("Z", "+00:00")) for k in ("start", "end"))
                expected = _window_count(organization_id, start, end)
                total = stats["summary"]["total"]
                if total != expected:
                    raise BenchFailure(f"delivery-stats 30d total {total} != {expected} events in SQL")
                checks.append(
                    f"million: delivery-stats 30d total {total:,} = SQL count of the organization's window; "
                    f"{events_count():,} events in the table"
                )
                health = client.get("/api/v1/queue-health", headers=api).json()
                notes.append(
                    f"queue-health answered with {health['stats']['workersOnline']} worker(s) online (a product "
                    f"worker runs during the phase), healthy={health['healthy']}: {'; '.join(health['reasons'])}"
                )
        finally:
            server.stop()
    finally:
        worker.stop()
        infra.redis_clean()
    return MillionFigures(baseline=baseline, pages=pages, checks=checks, notes=notes)
