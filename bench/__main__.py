"""`make bench` (python -m bench): measure mendhook beside baselines from the same run.

Exit status: 0 when every bar passes, 1 when a bar fails (the table is still printed), 2 when a
check the figures depend on fails (e.g. broker messages != accepted events, LocalTask count !=
10 x events) or the bench cannot run at all. See docs/performance.md.
"""

import argparse
import datetime
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bench import infra, report

if TYPE_CHECKING:
    from bench import phases


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="events end to end (and no-op tasks)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per HTTP target")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per HTTP target")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections of the load generator")
    parser.add_argument("--intake-pool", type=int, default=30_000, help="presigned intake requests")
    parser.add_argument(
        "--only", choices=["intake", "e2e", "workflows", "outbound", "retention", "million"], help="run one part"
    )
    parser.add_argument(
        "--brokers", default="redis,rabbitmq", help="brokers end to end runs on, comma-separated (redis, rabbitmq)"
    )
    parser.add_argument("--reseed", action="store_true", help="seed the 1,000,000 events afresh even if kept")
    parser.add_argument(
        "--million-max-age", type=float, default=6.0, help="hours a kept seed is reused before it is made afresh"
    )
    parser.add_argument("--million-samples", type=int, default=30, help="measured GETs per page (million)")
    parser.add_argument("--million-warmup", type=int, default=5, help="warm-up GETs per page (million)")
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: Sequence[str]) -> int:
    args = parse(argv)
    urls = infra.configure_environment()
    infra.database_create(urls["DATABASE_URL"])
    million_url = infra.million_database_url(urls["DATABASE_URL"])
    if args.only in (None, "million"):
        infra.database_create(million_url)
        # Read by bench/settings.py: the "million" database alias.
        os.environ["BENCH_MILLION_DATABASE_NAME"] = million_url.rsplit("/", 1)[1]

    import django

    django.setup()
    # httpx logs every readiness probe at INFO; the bench's own lines are enough.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from django.core.management import call_command

    from bench import phases

    for line in report.machine():
        log(line)
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        log("WARNING: the machine is busy (load average above half the cores): expect lower, noisier figures")
    log(f"database {urls['DATABASE_URL']}, broker {urls['REDIS_URL']}; migrating")
    call_command("migrate", interactive=False, verbosity=0)
    log(
        f"gunicorn: {' '.join(infra.gunicorn_command()[1:])} ({infra.gunicorn_workers()} workers x "
        f"{infra.gunicorn_threads()} threads, gthread); worker: {' '.join(infra.worker_command('<name>')[1:])}"
    )
    options = phases.Options(
        events=args.events,
        warmup=args.warmup,
        duration=args.duration,
        connections=args.connections,
        intake_pool=args.intake_pool,
    )
    rows: list[report.Row] = []
    checks: list[str] = []
    notes: list[str] = []
    started = time.perf_counter()
    try:
        if args.only in (None, "intake"):
            figures, intake_checks = phases.intake_phase(options, log)
            intake, noop_view, peer = figures.intake, figures.noop, figures.peer
            checks += intake_checks
            rows += [
                report.bar_row(f"intake (webhooks/s vs no-op view req/s; target {report.INTAKE_RATIO_TARGET:g})",
                               intake.rate, noop_view.rate, "/s",
                               report.INTAKE_RATIO_BAR),
                report.info_row(f"intake vs the default Django peer (target {report.INTAKE_PEER_RATIO_TARGET:g}x)",
                                intake.rate, peer.rate, "/s"),
                report.info_row("intake p50 latency", intake.p50_ms, noop_view.p50_ms, "ms", 2),
                report.info_row(f"intake p99 latency (vs no-op p99; target < {report.INTAKE_P99_TARGET:g}x)",
                                intake.p99_ms, noop_view.p99_ms, "ms", 2),
                report.info_row("peer p50 / p99 latency", peer.p50_ms, peer.p99_ms, "ms", 2),
            ]  # fmt: skip
            notes.append(
                f"load generator CPU: {intake.client_cpu_share:.0%} of one core during intake, "
                f"{noop_view.client_cpu_share:.0%} during the no-op view (it shares the {os.cpu_count()} cores)"
            )
        if args.only in (None, "e2e"):
            for broker in args.brokers.split(","):
                rows += e2e_rows(options, broker, checks, notes)
        if args.only in (None, "workflows"):
            rows += workflows_rows(options, checks, notes)
        if args.only in (None, "outbound"):
            rows += outbound_rows(options, checks, notes)
        if args.only in (None, "retention"):
            rows += retention_rows(options, checks, notes)
        if args.only in (None, "million"):
            rows += million_rows(args, million_url, checks, notes)
    except infra.BenchFailure as failure:
        log(f"CHECK FAILED: {failure}")
        infra.redis_clean()  # no stray messages for whoever points a worker at this db next
        if rows:
            print(report.table(rows))
        return 2
    finally:
        log(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print(report.table(rows))
    print()
    for line in [*checks, *notes]:
        print(f"- {line}")
    print(f"- total bench time {time.perf_counter() - started:.0f}s; logs in {infra.LOG_DIR}")
    failed = [r.measure for r in rows if r.result == "FAIL"]
    if failed:
        log(f"bars failed: {', '.join(failed)}")
        return 1
    log("all bars pass")
    return 0


def e2e_rows(options: "phases.Options", broker: str, checks: list[str], notes: list[str]) -> list[report.Row]:
    from bench import phases

    e2e, noop_tasks, e2e_checks = phases.e2e_phase(options, log, broker=broker)
    checks += e2e_checks
    on = "Redis" if broker == "redis" else "RabbitMQ"
    rows = [
        report.bar_row(
            f"end to end on {on} ({phases.TASKS_PER_EVENT} tasks/event; events/s vs no-op tasks/s; "
            f"target {report.E2E_RATIO_TARGET:g})",
            e2e.rate,
            noop_tasks.rate,
            "/s",
            report.E2E_RATIO_BAR,
        ),
        report.rss_row(f"worker peak RSS on {on}, largest process, {e2e.count} events", e2e.peak_rss_mb,
                       noop_tasks.peak_rss_mb),
        report.info_row(f"worker peak RSS on {on}, largest pool child", e2e.child_peak_rss_mb,
                        noop_tasks.child_peak_rss_mb, "MB"),
    ]  # fmt: skip
    notes += [
        f"end to end on {on}: {e2e.count} events in {e2e.seconds:.1f}s (first half {e2e.first_half_rate:.1f}/s, "
        f"second half {e2e.second_half_rate:.1f}/s); no-op: {noop_tasks.count} tasks in {noop_tasks.seconds:.1f}s",
        f"worker CPU on {on} (main + pool): {e2e.cpu_ms_per_item:.2f} ms/event vs {noop_tasks.cpu_ms_per_item:.2f} "
        f"ms/no-op task",
        f"worker RSS on {on}: largest process is the {e2e.peak_rss_process} (no-op: {noop_tasks.peak_rss_process}); "
        f"largest pool child {e2e.child_rss_early_mb:.1f} MB after 10% of the events, "
        f"{e2e.child_peak_rss_mb:.1f} MB peak",
    ]
    return rows


def workflows_rows(options: "phases.Options", checks: list[str], notes: list[str]) -> list[report.Row]:
    from bench import workflows

    figures, noop_tasks, workflow_checks = workflows.workflows_phase(options, log)
    checks += workflow_checks
    notes += [
        f"workflows: {figures.count} runs in {figures.seconds:.1f}s with {figures.dispatch_calls} dispatcher calls "
        f"(every {workflows.DISPATCH_INTERVAL_SECONDS:g}s, as beat); no-op: {noop_tasks.count} tasks in "
        f"{noop_tasks.seconds:.1f}s",
        f"workflows: worker CPU (main + pool) {figures.cpu_ms_per_run:.2f} ms/run vs "
        f"{noop_tasks.cpu_ms_per_item:.2f} ms/no-op task",
        "workflows: due-to-executing latency is StepExecution.started_at - the run's next_action_at; burst: all "
        f"{figures.count} due at once (queueing behind each other); paced: {figures.paced_count} runs falling due "
        "one after another at half the measured run rate",
    ]
    return [
        report.bar_row(
            "workflows (1-step update_lead runs/s vs no-op tasks/s)",
            figures.rate,
            noop_tasks.rate,
            "/s",
            report.WORKFLOWS_RATIO_BAR,
        ),
        report.Row(
            "workflow due-to-executing, paced (p50 / p99)",
            f"{figures.paced_p50_ms:.0f} / {figures.paced_p99_ms:.0f} ms",
            "-", "-", "-", "",
        ),
        report.Row(
            f"workflow due-to-executing, burst of {figures.count} (p50 / p99)",
            f"{figures.burst_p50_ms / 1000:.1f} / {figures.burst_p99_ms / 1000:.1f} s",
            "-", "-", "-", "",
        ),
    ]  # fmt: skip


def outbound_rows(options: "phases.Options", checks: list[str], notes: list[str]) -> list[report.Row]:
    from bench import outbound

    mendhook, baseline, outbox, outbound_checks = outbound.outbound_phase(options, log)
    checks += outbound_checks
    notes += [
        f"outbound: {mendhook.count} messages in {mendhook.seconds:.1f}s (first half {mendhook.first_half_rate:.1f}/s, "
        f"second half {mendhook.second_half_rate:.1f}/s); raw POSTs: {baseline.count} in {baseline.seconds:.1f}s",
        f"outbound: worker CPU (main + pool) {mendhook.cpu_ms_per_item:.2f} ms/message vs "
        f"{baseline.cpu_ms_per_item:.2f} ms/raw POST; the receiver runs in the bench process",
        f"outbox cost: {outbox.count} Booking inserts per side, each its own transaction (commit and on-commit "
        "publish included)",
    ]
    return [
        report.bar_row(
            "outbound (messages delivered/s vs raw httpx POSTs/s)",
            mendhook.rate,
            baseline.rate,
            "/s",
            report.OUTBOUND_RATIO_BAR,
        ),
        report.rss_row(f"worker peak RSS, outbound, {mendhook.count} messages", mendhook.peak_rss_mb,
                       baseline.peak_rss_mb),
        report.bar_row(
            "outbox cost (Booking inserts/s with a subscriber vs without)",
            outbox.outbox_rate,
            outbox.plain_rate,
            "/s",
            report.OUTBOX_COST_BAR,
        ),
    ]  # fmt: skip


def retention_rows(options: "phases.Options", checks: list[str], notes: list[str]) -> list[report.Row]:
    from bench import retention

    figures, retention_checks = retention.retention_phase(options, log)
    checks += retention_checks
    notes += [
        f"retention: seeded in {figures.seed_seconds:.0f}s; purge of 1,000,000 took "
        f"{figures.purge_seconds or 0:.0f}s, {figures.deleted_in_window:,} deleted inside the measured window",
        f"retention: batch query plan: {figures.plan}",
    ]
    return [
        report.bar_row(
            "intake during a 1M-event purge (webhooks/s vs without)",
            figures.during.rate,
            figures.baseline.rate,
            "/s",
            report.RETENTION_RATIO_BAR,
        ),
        report.info_row("intake p99 latency during the purge", figures.during.p99_ms, figures.baseline.p99_ms, "ms", 2),
    ]


def million_rows(args: argparse.Namespace, million_url: str, checks: list[str], notes: list[str]) -> list[report.Row]:
    from bench import million, million_seed

    note = million_seed.prepare(reseed=args.reseed, max_age=datetime.timedelta(hours=args.million_max_age), log=log)
    figures = million.measure(
        database_url=million_url, warmup=args.million_warmup, samples=args.million_samples, note=note, log=log
    )
    base = figures.baseline
    bars = {
        "events list": report.ADMIN_PAGE_BAR_MS,
        "dashboard (admin home)": report.ADMIN_PAGE_BAR_MS,
        "delivery-stats 24h cold": report.API_READ_BAR_MS,
        "delivery-stats 30d cold": report.API_READ_BAR_MS,
        "delivery-stats 30d warm": report.API_READ_BAR_MS,
        "queue-health": report.API_READ_BAR_MS,
    }
    rows = [
        report.latency_row(
            f"1M events: {name}", page.median_ms, page.p95_ms, base.median_ms, base.p95_ms, bars.get(name)
        )
        for name, page in figures.pages.items()
    ]
    checks += figures.checks
    notes += [f"million: {line}" for line in figures.notes]
    notes.append(
        f"million: baseline is GET /bench/noop/ on the same gunicorn and connection; "
        f"{args.million_warmup} warm-up + {args.million_samples} measured sequential requests per page"
    )
    return rows


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
