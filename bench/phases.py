"""The measurements: intake beside a no-op view, end to end beside no-op tasks, worker RSS.

Django is set up by __main__ before this module is imported.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.db.models import Count, Sum

from bench import infra, peer
from bench.brokers import BROKERS
from bench.infra import BenchFailure, ManagedProcess, RssSampler
from bench.loadgen import raw_request, write_requests
from bench.tasks import noop
from config.queues import Queue
from localdev import demo
from tests.support.signing import encode, matter_payload, standard_headers
from webhooks_app.models import (
    ConnectorKind,
    EventItem,
    EventStatus,
    ItemStatus,
    LocalTask,
    Organization,
    ProcessingAttempt,
    SigningScheme,
    Source,
    SourceKind,
    WebhookEvent,
)
from webhooks_app.models.sources import new_signing_secret, signing_secret_entries_for
from webhooks_app.services.dispatch import event_dispatch

TASKS_PER_EVENT = len(demo.CONSULTATION_TASKS)
QUEUE = Queue.WEBHOOKS.value
SOURCE_SLUG = "bench-clio"
# Any of these during the end-to-end run means the figures would not be about the happy path.
FAILURE_STATES = (
    EventStatus.PARTIAL_FAILURE,
    EventStatus.FAILED,
    EventStatus.DEAD_LETTER,
    EventStatus.RETRY_SCHEDULED,
)


@dataclass(frozen=True)
class Options:
    events: int
    warmup: float
    duration: float
    connections: int
    intake_pool: int


def reset() -> None:
    infra.database_truncate()
    infra.redis_clean()


def bench_source() -> Source:
    """An organization with the demo's templates and assignee rules, and a Clio-kind source on
    the local connector: every miami event creates exactly ten tasks."""
    organization = Organization.objects.create(slug="bench-law", name="Bench Law")
    demo.templates_create(organization=organization)
    demo.assignee_rules_create(organization=organization)
    return Source.objects.create(
        organization=organization,
        slug=SOURCE_SLUG,
        kind=SourceKind.CLIO,
        signing_scheme=SigningScheme.STANDARD_WEBHOOKS,
        signing_secret_entries=signing_secret_entries_for(new_signing_secret()),
        connector=ConnectorKind.LOCAL,
    )


def miami_payload(n: int) -> dict[str, object]:
    return matter_payload(matter_id=100_000 + n, location="miami")


# --- Intake ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpFigures:
    rate: float
    p50_ms: float
    p99_ms: float
    completions: int
    total_status: dict[str, int]
    errors: dict[str, int]
    client_cpu_share: float  # client CPU seconds / wall seconds


def signed_requests(source: Source, count: int) -> Path:
    """Sign every request before the clock starts: signing is the sender's cost, not ours."""
    secret = source.signing_secrets[0]
    requests = []
    for n in range(count):
        body = encode(miami_payload(n))
        requests.append(raw_request(host="127.0.0.1", headers=standard_headers(secret, body), body=body))
    fd, name = tempfile.mkstemp(prefix="mendhook-bench-", suffix=".req")
    os.close(fd)
    path = Path(name)
    write_requests(path, requests)
    return path


def load(port: int, path: str, requests: Path, options: Options, *, cycle: bool, expect: int) -> HttpFigures:
    cmd = [
        sys.executable, "-m", "bench.loadgen", "--requests", str(requests), "--port", str(port),
        "--path", path, "--connections", str(options.connections), "--warmup", str(options.warmup),
        "--duration", str(options.duration),
    ]  # fmt: skip
    if cycle:
        cmd.append("--cycle")
    timeout = options.warmup + options.duration + 120
    done = subprocess.run(cmd, cwd=infra.ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise BenchFailure(f"load generator failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout)
    if result["exhausted"]:
        raise BenchFailure(f"ran out of the {options.intake_pool} presigned requests; raise --intake-pool")
    window = result["window_status"]
    unexpected = {k: v for k, v in result["total_status"].items() if k != str(expect)}
    if unexpected or result["errors"]:
        raise BenchFailure(f"{path}: unexpected answers {unexpected} / client errors {result['errors']}")
    completions = int(window.get(str(expect), 0))
    if completions == 0:
        raise BenchFailure(f"{path}: no request completed inside the measured window")
    return HttpFigures(
        rate=completions / result["duration"],
        p50_ms=float(result["p50_ms"]),
        p99_ms=float(result["p99_ms"]),
        completions=completions,
        total_status=result["total_status"],
        errors=result["errors"],
        client_cpu_share=result["cpu_seconds"] / result["wall_seconds"],
    )


def measure_http(
    path: str, requests: Path, options: Options, *, cycle: bool, expect: int, env: dict[str, str] | None = None
) -> HttpFigures:
    """A fresh gunicorn (product config, bench URLconf) for each target: same start for each."""
    server, port = infra.start_gunicorn(env)
    try:
        return load(port, path, requests, options, cycle=cycle, expect=expect)
    finally:
        server.stop()


@dataclass(frozen=True)
class IntakeFigures:
    intake: HttpFigures
    noop: HttpFigures
    # The default Django peer (bench/peer.py) on the same gunicorn, client and requests.
    peer: HttpFigures


def intake_phase(options: Options, log: Callable[[str], None]) -> tuple[IntakeFigures, list[str]]:
    reset()
    source = bench_source()
    secret = source.signing_secrets[0]
    log(f"signing {options.intake_pool} intake requests (before any timing)")
    intake_requests = signed_requests(source, options.intake_pool)
    noop_requests = signed_requests(source, 2000)
    peer_requests = signed_requests(source, 5000)
    checks: list[str] = []
    try:
        log(
            f"intake: POST /webhooks/{SOURCE_SLUG}/, {options.connections} keep-alive connections, "
            f"{options.warmup:g}s warm-up + {options.duration:g}s measured, no worker running"
        )
        intake = measure_http(f"/webhooks/{SOURCE_SLUG}/", intake_requests, options, cycle=False, expect=202)
        # "Dispatched" means the broker holds the message: no worker ran, so every accepted
        # event's message must still sit in the webhooks list.
        checks.append(accepted_check("intake", intake, status=EventStatus.QUEUED))

        reset()
        bench_source()  # the same slug again; the requests stay signed with the first one's secret
        log("peer: POST /bench/peer/<source>/ (standardwebhooks verify, ORM create, on_commit(task.delay))")
        # The peer does not deduplicate: the same presigned requests may go round again.
        peer_env = {peer.SECRET_ENV: secret}
        peer_figures = measure_http(
            f"/bench/peer/{SOURCE_SLUG}/", peer_requests, options, cycle=True, expect=202, env=peer_env
        )
        checks.append(accepted_check("peer", peer_figures, status=EventStatus.RECEIVED))

        reset()
        log("baseline: POST /bench/noop/, same client, connections, durations and gunicorn config")
        baseline = measure_http("/bench/noop/", noop_requests, options, cycle=True, expect=200)
        infra.redis_clean()
    finally:
        intake_requests.unlink(missing_ok=True)
        noop_requests.unlink(missing_ok=True)
        peer_requests.unlink(missing_ok=True)
    return IntakeFigures(intake=intake, noop=baseline, peer=peer_figures), checks


def accepted_check(name: str, figures: HttpFigures, *, status: EventStatus) -> str:
    accepted = figures.total_status.get("202", 0)
    in_broker = int(infra.redis_client().llen(QUEUE))
    persisted = WebhookEvent.objects.count()
    in_status = WebhookEvent.objects.filter(status=status).count()
    if not accepted == in_broker == persisted == in_status:
        raise BenchFailure(
            f"{name}: {accepted} accepted (202) but {in_broker} broker messages, "
            f"{persisted} event rows, {in_status} of them {status}"
        )
    return f"{name}: {accepted} accepted = {in_broker} messages in '{QUEUE}' = {persisted} rows {status}"


# --- End to end -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerFigures:
    count: int
    seconds: float
    rate: float
    peak_rss_mb: float  # the largest single worker process (main or pool child)
    peak_rss_process: str
    child_peak_rss_mb: float  # the largest pool child: where the tasks run
    child_rss_early_mb: float  # the largest pool child's RSS once 10% of the work was done
    first_half_rate: float
    second_half_rate: float
    cpu_ms_per_item: float  # worker processes' CPU (main + pool), per event or per task


def cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    # utime, stime: fields 14 and 15 of stat, i.e. 12 and 13 after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drain(
    name: str,
    count: int,
    progress: Callable[[], int],
    poll: float,
    timeout: float,
    *,
    waiting: Callable[[], int] | None = None,
    env: dict[str, str] | None = None,
) -> WorkerFigures:
    """Start a worker on a preloaded queue; time from its first message taken until
    progress() (items finished) reaches count. waiting() counts the messages left in the queue
    (default: the Redis list); env adds to the worker's environment (another broker)."""
    client = infra.redis_client()
    if waiting is None:
        waiting = lambda: int(client.llen(QUEUE))  # noqa: E731
    worker = ManagedProcess(f"worker-{name}", infra.worker_command(name), env=env)
    sampler = RssSampler(worker).start()
    try:
        began = time.perf_counter()
        started: float | None = None
        halfway: float | None = None
        early_rss_mb = 0.0
        next_check = 0.0
        while True:
            now = time.perf_counter()
            if started is None:
                if waiting() < count:
                    started = now
            elif now >= next_check:
                next_check = now + poll
                done = progress()
                if not early_rss_mb and done >= count // 10:
                    early_rss_mb = max((kb for _rss, kb in sampler.children_rss_kb()), default=0) / 1024
                if halfway is None and done >= count // 2:
                    halfway = now
                if done >= count:
                    finished = now
                    break
            if not worker.alive():
                raise BenchFailure(f"worker {name} exited:\n{worker.output()[-3000:]}")
            if now - began > timeout:
                tail = worker.output()[-2000:]
                raise BenchFailure(f"worker {name} did not finish {count} in {timeout:.0f}s:\n{tail}")
            time.sleep(0.002 if started is None else 0.01)
        pids = [worker.pid, *worker.children()]
        cpu = sum(cpu_seconds(pid) for pid in pids)
    finally:
        sampler.stop()
        worker.stop()
    assert started is not None and halfway is not None
    seconds = finished - started
    peak_mb, which = sampler.peak_mb()
    return WorkerFigures(
        count=count,
        seconds=seconds,
        rate=count / seconds,
        peak_rss_mb=peak_mb,
        peak_rss_process=which,
        child_peak_rss_mb=sampler.child_peak_mb(),
        child_rss_early_mb=early_rss_mb,
        first_half_rate=(count // 2) / max(halfway - started, 1e-9),
        second_half_rate=(count - count // 2) / max(finished - halfway, 1e-9),
        cpu_ms_per_item=cpu * 1000 / count,
    )


def preload_events(source: Source, count: int) -> None:
    """Rows as intake stores them, published by the product's own dispatch."""
    events = [
        WebhookEvent(
            organization_id=source.organization_id,
            source=source,
            idempotency_key=f"id:{payload['id']}",
            event_type=demo.EVENT_TYPE,
            entity_id=str(100_000 + n),
            payload=payload,
            headers={"content-type": "application/json"},
            max_attempts=source.max_attempts,
        )
        for n, payload in ((n, miami_payload(n)) for n in range(count))
    ]
    WebhookEvent.objects.bulk_create(events, batch_size=1000)
    for event in events:
        if not event_dispatch(event_id=event.id):
            raise BenchFailure(f"could not publish event {event.id}")


def e2e_verify(count: int) -> str:
    by_status = dict(WebhookEvent.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    totals = WebhookEvent.objects.aggregate(created=Sum("tasks_created"), failed=Sum("tasks_failed"))
    tasks = LocalTask.objects.count()
    items_ok = EventItem.objects.filter(status=ItemStatus.SUCCEEDED).count()
    attempts = ProcessingAttempt.objects.count()
    expected = TASKS_PER_EVENT * count
    if (
        by_status != {EventStatus.SUCCEEDED.value: count}
        or tasks != expected
        or items_ok != expected
        or totals["created"] != expected
        or totals["failed"] != 0
        or attempts != count
    ):
        raise BenchFailure(
            f"end to end: events by status {by_status}, LocalTask {tasks} (want {expected}), succeeded items "
            f"{items_ok}, tasks_created {totals['created']}, tasks_failed {totals['failed']}, attempts {attempts}"
        )
    return (
        f"end to end: {count} events succeeded in one attempt each; LocalTask = {tasks} = {TASKS_PER_EVENT} x {count}"
    )


def e2e_phase(
    options: Options, log: Callable[[str], None], broker: str = "redis"
) -> tuple[WorkerFigures, WorkerFigures, list[str]]:
    """Events end to end beside no-op tasks, both through `broker` (bench.brokers.BROKERS)."""
    on = BROKERS[broker]()
    count = options.events
    timeout = max(600.0, count / 10)
    reset()
    on.clean()
    source = bench_source()
    log(f"end to end on {on.name}: preloading {count} events (rows + broker messages via event_dispatch)")
    started = time.perf_counter()
    with on.publishing():
        preload_events(source, count)
    log(f"  preloaded in {time.perf_counter() - started:.1f}s; starting the worker")
    if on.waiting() != count:
        raise BenchFailure(f"preloaded messages are not all in {on.name}")

    last_failure_check = 0.0

    def events_done() -> int:
        nonlocal last_failure_check
        if time.perf_counter() - last_failure_check > 1.0:
            last_failure_check = time.perf_counter()
            failed = WebhookEvent.objects.filter(status__in=FAILURE_STATES)
            if failed.exists():
                raise BenchFailure(f"events failed: {list(failed.values_list('status', 'last_error')[:5])}")
        return WebhookEvent.objects.filter(status=EventStatus.SUCCEEDED).count()

    suffix = "" if broker == "redis" else f"-{broker}"
    mendhook = drain(
        f"mendhook{suffix}", count, events_done, poll=0.1, timeout=timeout, waiting=on.waiting, env=on.worker_env
    )
    checks = [f"{e2e_verify(count)} ({on.name})"]

    on.clean()
    baseline = noop_baseline(count, timeout, log, broker=broker)
    return mendhook, baseline, checks


def noop_baseline(count: int, timeout: float, log: Callable[[str], None], broker: str = "redis") -> WorkerFigures:
    """`count` no-op tasks preloaded on the webhooks queue of `broker`, drained by the same worker
    command: the ceiling the end-to-end and workflows phases are compared with."""
    on = BROKERS[broker]()
    on.clean()
    log(f"baseline on {on.name}: {count} no-op tasks on queue '{QUEUE}', same worker command")
    with on.publishing():
        for n in range(count):
            noop.apply_async(args=(n,), retry=False)
    if on.waiting() != count:
        raise BenchFailure(f"no-op messages are not all in {on.name}")
    name = "noop" if broker == "redis" else f"noop-{broker}"
    tasks_done = on.noop_progress(count, infra.LOG_DIR / f"worker-{name}.log")
    baseline = drain(name, count, tasks_done, poll=0.0, timeout=timeout, waiting=on.waiting, env=on.worker_env)
    on.clean()
    return baseline
