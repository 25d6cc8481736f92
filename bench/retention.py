"""Retention under load: intake's rate while the purge deletes 1,000,000 expired events, beside
intake's rate on the same table without it. Django is set up by __main__ before this import."""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection
from django.db.models import Field

from bench import infra
from bench.infra import BenchFailure
from bench.phases import SOURCE_SLUG, HttpFigures, Options, bench_source, measure_http, reset, signed_requests
from ops_app.models import RetentionRun
from ops_app.retention import retention_purge
from webhooks_app.models import EventStatus, Source, WebhookEvent

EXPIRED = 1_000_000
# Rows per INSERT ... SELECT generate_series: each its own short statement.
SEED_CHUNK = 100_000
# Expressions for the seeded rows' columns that must differ per row or say "expired".
_SQL_VALUES = {
    "id": "gen_random_uuid()",
    "idempotency_key": "'expired-' || g",
    "status": f"'{EventStatus.SUCCEEDED.value}'",
    "received_at": "now() - interval '40 days'",
    "completed_at": "now() - interval '40 days'",
    "updated_at": "now() - interval '40 days'",
    "success": "true",
    "action": "'created_tasks'",
    "payload": '\'{"type": "matter.stage_changed"}\'::jsonb',
    "headers": "'{}'::jsonb",
}


@dataclass(frozen=True)
class RetentionFigures:
    baseline: HttpFigures
    during: HttpFigures
    seed_seconds: float
    deleted_in_window: int
    purge_seconds: float | None
    plan: str


def _seed(source: Source, count: int) -> None:
    """`count` succeeded events finished 40 days ago, inserted by the database itself."""
    columns, values, params = [], [], []
    for field in WebhookEvent._meta.concrete_fields:
        assert isinstance(field, Field)
        columns.append(connection.ops.quote_name(str(field.column)))
        if field.name in _SQL_VALUES:
            values.append(_SQL_VALUES[field.name])
        elif field.name == "organization":
            values.append("%s")
            params.append(source.organization_id)
        elif field.name == "source":
            values.append("%s")
            params.append(source.pk)
        elif field.null:
            values.append("NULL")
        else:
            values.append("%s")
            params.append(field.get_db_prep_value(field.get_default(), connection))
    # Names from the model, values as parameters or the fixed expressions above.
    sql = (
        f"INSERT INTO {WebhookEvent._meta.db_table} ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(values)} FROM generate_series(%s, %s) AS g"
    )
    with connection.cursor() as cursor:
        for start in range(1, count + 1, SEED_CHUNK):
            cursor.execute(sql, [*params, start, min(start + SEED_CHUNK - 1, count)])
        cursor.execute(f"ANALYZE {WebhookEvent._meta.db_table}")


def _plan() -> str:
    from django.db.models import Q
    from django.utils import timezone

    from ops_app.retention import expired_events

    query = expired_events(cutoff=timezone.now(), organization=Q()).order_by("completed_at").values("id")[:1000]
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql} FOR UPDATE SKIP LOCKED", params)
        return " / ".join(row[0].strip() for row in cursor.fetchall())


def retention_phase(options: Options, log: Callable[[str], None]) -> tuple[RetentionFigures, list[str]]:
    reset()
    source = bench_source()
    log(f"retention: seeding {EXPIRED:,} succeeded events finished 40 days ago")
    started = time.perf_counter()
    _seed(source, EXPIRED)
    seed_seconds = time.perf_counter() - started
    plan = _plan()
    if "event_retention_idx" not in plan:
        raise BenchFailure(f"retention: the batch query does not use event_retention_idx: {plan}")
    requests = signed_requests(source, options.intake_pool)
    requests_during = signed_requests(source, options.intake_pool)
    try:
        log("retention: intake baseline on the same table, no purge running")
        baseline = measure_http(f"/webhooks/{SOURCE_SLUG}/", requests, options, cycle=False, expect=202)
        infra.redis_clean()

        purge_done: list[float] = []

        def purge() -> None:
            begin = time.perf_counter()
            try:
                retention_purge()
            finally:
                purge_done.append(time.perf_counter() - begin)
                connection.close()

        before = WebhookEvent.objects.count()
        log("retention: intake while the purge runs")
        thread = threading.Thread(target=purge, name="retention-purge", daemon=True)
        thread.start()
        time.sleep(1.0)  # the purge is into its batches before the clock starts
        during = measure_http(f"/webhooks/{SOURCE_SLUG}/", requests_during, options, cycle=False, expect=202)
        still_running = thread.is_alive()
        after = WebhookEvent.objects.count()
        deleted_in_window = before + during.total_status.get("202", 0) - after
        log("retention: waiting for the purge to finish")
        thread.join(timeout=3600)
        infra.redis_clean()
    finally:
        requests.unlink(missing_ok=True)
        requests_during.unlink(missing_ok=True)
    checks = []
    run = RetentionRun.objects.order_by("-started_at").first()
    left = WebhookEvent.objects.filter(idempotency_key__startswith="expired-").count()
    if run is None or run.events_deleted != EXPIRED or left:
        raise BenchFailure(f"retention: deleted {run.events_deleted if run else 0} of {EXPIRED}, {left} left")
    if not still_running:
        checks.append("retention: WARNING the purge finished inside the measured window; the ratio understates it")
    checks.append(
        f"retention: {run.events_deleted:,} expired events deleted in {run.batches} batches; "
        f"{baseline.completions + during.completions} intake events kept"
    )
    return (
        RetentionFigures(
            baseline=baseline,
            during=during,
            seed_seconds=seed_seconds,
            deleted_in_window=deleted_in_window,
            purge_seconds=purge_done[0] if purge_done else None,
            plan=plan,
        ),
        checks,
    )
