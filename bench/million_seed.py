"""The 1,000,000-event seed of the million phase (bench/million.py): its own database (the bench
database's name + "_million", Django alias "million"), generated in SQL, kept between runs while
its marker (seed version, event count, a digest of the tables' indexes) still matches the table
and it is younger than --million-max-age hours; --reseed forces a new one. A seed ages: the
last-24-hours window of a day-old seed is nearly empty, which would flatter 24h.

Django is set up by __main__ before this module is imported.
"""

import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from bench import infra
from localdev import demo
from ops_app.models import ApiKey
from webhooks_app.errors import ErrorCode, failure_kind
from webhooks_app.models import ConnectorKind, Organization, SigningScheme, Source, SourceKind, TaskTemplate
from webhooks_app.models.sources import new_signing_secret, signing_secret_entries_for

ALIAS = "million"
SEED_VERSION = 1
EVENTS = 1_000_000
# received_at spans the last DAYS days, in insertion order (as production writes them), three
# times as dense now as DAYS ago (steady growth): row n of N is (DAYS/2) * (3 - sqrt(9 - 8u))
# days old, u = (N - n + 0.5) / N, the inverse of the density's cumulative distribution.
DAYS = 60
ADMIN_USER = "bench-admin"
ADMIN_PASSWORD = "bench-admin-password-not-secret"  # a throwaway account in a bench database
API_KEY_NAME = "bench million"
MARKER = "mendhook-bench-million"
TABLE = "webhooks_app_webhookevent"

# (slug, name, share of all events, [(source slug, kind, share within the organization)])
ORGANIZATIONS = [
    (
        "bench-million-law",
        "Bench Million Law",
        0.80,
        [
            ("bm-clio", SourceKind.CLIO, 0.60),
            ("bm-vapi", SourceKind.VAPI, 0.20),
            ("bm-retell", SourceKind.RETELL, 0.10),
            ("bm-generic", SourceKind.GENERIC, 0.10),
        ],
    ),
    (
        "bench-million-two",
        "Bench Second Firm",
        0.15,
        [("bm2-clio", SourceKind.CLIO, 0.75), ("bm2-llamaparse", SourceKind.LLAMAPARSE, 0.25)],
    ),
    ("bench-million-three", "Bench Third Firm", 0.05, [("bm3-generic", SourceKind.GENERIC, 1.0)]),
]
# Event types each kind of source sends, with their shares.
EVENT_TYPES = {
    SourceKind.CLIO: [("matter.stage_changed", 0.70), ("matter.created", 0.15), ("contact.updated", 0.15)],
    SourceKind.VAPI: [("call.ended", 0.80), ("call.transferred", 0.20)],
    SourceKind.RETELL: [("call_analyzed", 1.0)],
    SourceKind.LLAMAPARSE: [("parse.completed", 0.90), ("parse.failed", 0.10)],
    SourceKind.GENERIC: [("matter.stage_changed", 0.50), ("lead.created", 0.50)],
}
# Cumulative shares of the event statuses (the brief's distribution).
STATUSES = [
    ("succeeded", 0.85),
    ("partial_failure", 0.91),
    ("failed", 0.93),
    ("dead_letter", 0.94),
    ("retry_scheduled", 0.96),
    ("manually_resolved", 0.97),
    ("queued", 0.985),
    ("processing", 1.0),
]
# The failure code of a failed item: one slot of 20 per 5%.
ITEM_CODES = (
    [ErrorCode.ASSIGNEE_NO_CSC] * 7
    + [ErrorCode.ASSIGNEE_NO_PARALEGAL] * 4
    + [ErrorCode.CLIO_API_FAILED] * 3
    + [ErrorCode.RATE_LIMITED] * 2
    + [ErrorCode.TIMEOUT] * 2
    + [ErrorCode.DOWNSTREAM_REJECTED, ErrorCode.CONNECTION]
)
ERROR_MESSAGES = {
    ErrorCode.ASSIGNEE_NO_CSC: "No CSC on file for location naples",
    ErrorCode.ASSIGNEE_NO_PARALEGAL: "No paralegal on file for location orlando",
    ErrorCode.CLIO_API_FAILED: "Clio API answered 502 Bad Gateway",
    ErrorCode.RATE_LIMITED: "Clio API answered 429 Too Many Requests (Retry-After: 30)",
    ErrorCode.TIMEOUT: "Clio API did not answer within 10s",
    ErrorCode.DOWNSTREAM_REJECTED: "Clio API answered 422: due_at must be in the future",
    ErrorCode.CONNECTION: "Could not connect to app.clio.com:443 (connection reset)",
    ErrorCode.VALIDATION: "Payload failed validation: data.stage is required",
    ErrorCode.INTERNAL: "KeyError: 'matter_id'",
}


# --- SQL pieces (only literals from this module are interpolated; values go as parameters) ---


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _case(subject: str, mapping: dict[str, str]) -> str:
    whens = " ".join(f"WHEN {_quote(k)} THEN {_quote(v)}" for k, v in mapping.items())
    return f"CASE {subject} {whens} ELSE '' END"


def _code_of(event_id: str, number: str) -> str:
    """The code of failed item `number` of an event: the same in failure_details and the ledger."""
    codes = ", ".join(_quote(c.value) for c in ITEM_CODES)
    return f"(ARRAY[{codes}])[1 + mod(abs(hashtext({event_id}::text || ':' || {number})::bigint), {len(ITEM_CODES)})]"


def _pick(r: str, choices: list[tuple[str, float]]) -> str:
    """CASE over cumulative shares of a uniform random column r."""
    if len(choices) == 1:
        return choices[0][0]
    total, whens = 0.0, []
    for value, share in choices[:-1]:
        total += share
        whens.append(f"WHEN {r} < {total:.6f} THEN {value}")
    return f"CASE {' '.join(whens)} ELSE {choices[-1][0]} END"


TITLES = [title for _n, title, _role, _due in demo.CONSULTATION_TASKS]
ROLES = [role for _n, _title, role, _due in demo.CONSULTATION_TASKS]
DUE_DAYS = [due for _n, _title, _role, due in demo.CONSULTATION_TASKS]


def _array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join(_quote(v) for v in values) + "]"


def events_sql(sources: dict[str, Source]) -> str:
    orgs = [(str(sources[srcs[0][0]].organization_id), share) for _slug, _name, share, srcs in ORGANIZATIONS]
    source_of_org = " ".join(
        f"WHEN {sources[srcs[0][0]].organization_id} THEN "
        + _pick("r_src", [(str(sources[slug].pk), share) for slug, _kind, share in srcs])
        for _slug, _name, _share, srcs in ORGANIZATIONS
    )
    type_of_source = " ".join(
        f"WHEN {source.pk} THEN "
        + _pick("r_type", [(_quote(t), share) for t, share in EVENT_TYPES[SourceKind(source.kind)]])
        for source in sources.values()
    )
    status = "CASE " + " ".join(f"WHEN r_status < {c} THEN {_quote(s)}" for s, c in STATUSES[:-1])
    status += f" ELSE {_quote(STATUSES[-1][0])} END"
    messages = {code.value: message for code, message in ERROR_MESSAGES.items()}
    first_code = _code_of("id", "11 - k")
    return f"""
    WITH base AS (
        SELECT n,
               gen_random_uuid() AS id,
               %(now)s::timestamptz - make_interval(
                   secs => 86400 * {DAYS / 2:g} * (3 - sqrt(9 - 8 * ((%(total)s - n + 0.5) / %(total)s::float8)))
                           + random()
               ) AS received_at,
               random() AS r_org, random() AS r_src, random() AS r_type, random() AS r_status,
               random() AS r_att, random() AS r_k, random() AS r_misc, random() AS r_dur
        FROM generate_series(1::bigint, %(total)s) AS n
    ), org AS (
        SELECT b.*, {_pick("r_org", orgs)} AS organization_id, {status} AS status FROM base b
    ), src AS (
        SELECT o.*, CASE organization_id {source_of_org} END AS source_id FROM org o
    ), typed AS (
        SELECT s.*, CASE source_id {type_of_source} END AS event_type,
               -- failed items: partial failures, and those retrying, dead-lettered or resolved with items
               CASE WHEN status IN ('partial_failure', 'retry_scheduled', 'manually_resolved')
                         OR (status = 'dead_letter' AND r_misc < 0.7)
                    THEN 1 + floor(r_k * 3)::int ELSE 0 END AS k,
               CASE status
                   WHEN 'succeeded' THEN CASE WHEN r_att < 0.90 THEN 1 WHEN r_att < 0.98 THEN 2 ELSE 3 END
                   WHEN 'dead_letter' THEN 3
                   WHEN 'retry_scheduled' THEN 1 + floor(r_att * 2)::int
                   WHEN 'queued' THEN 0
                   WHEN 'processing' THEN 1
                   ELSE 1 + floor(r_att * 3)::int
               END AS attempts
        FROM src s
    ), timed AS (
        SELECT t.*,
               CASE WHEN status IN ('succeeded', 'partial_failure', 'failed', 'dead_letter')
                    THEN received_at + make_interval(secs => 0.2 + 2 * r_dur + 60 * (attempts - 1))
                    WHEN status = 'manually_resolved'
                    THEN least(%(now)s::timestamptz, received_at + make_interval(secs => 3600 + 172800 * r_dur))
               END AS completed_at,
               CASE WHEN attempts > 0
                    THEN received_at + make_interval(secs => 0.1 + 2 * r_dur + 60 * (attempts - 1)) END
                   AS last_attempt_at,
               CASE WHEN k > 0 THEN {first_code}
                    WHEN status = 'failed' THEN CASE WHEN r_misc < 0.6 THEN 'ERR_VALIDATION' ELSE 'ERR_INTERNAL' END
                    WHEN status = 'dead_letter' THEN CASE WHEN r_misc < 0.85 THEN 'ERR_CLIO_API_FAILED'
                                                          ELSE 'ERR_TIMEOUT' END
                    ELSE '' END AS last_error_code
        FROM typed t
    )
    INSERT INTO {TABLE} (
        id, idempotency_key, event_type, entity_id, payload, headers, status, success, action,
        tasks_created, tasks_failed, failure_details, attempts, round_attempts, max_attempts,
        recoverable_rounds, last_attempt_at, completed_at, last_error, last_error_code, next_retry_at,
        claimed_by, claimed_until, received_at, updated_at, organization_id, source_id
    )
    SELECT
        id,
        'msg_' || substr(md5(n::text), 1, 24),
        event_type,
        (100000 + mod(n * 7919, 60000))::text,
        jsonb_build_object(
            'id', 'evt_' || substr(md5(n::text), 9, 24),
            'type', event_type,
            'created_at', to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
            'data', jsonb_build_object(
                'matter_id', 100000 + mod(n * 7919, 60000),
                'display_number', '000' || (100000 + mod(n * 7919, 60000)) || '-Intake',
                'stage', 'consultation',
                'location', (ARRAY['miami', 'naples', 'tampa', 'orlando'])[1 + mod(n, 4)],
                'practice_area', (ARRAY['Personal Injury', 'Family Law', 'Estate Planning'])[1 + mod(n, 3)],
                'client', jsonb_build_object(
                    'id', 500000 + mod(n, 90000),
                    'name', 'Client ' || mod(n, 90000),
                    'email', 'client' || mod(n, 90000) || '@example.com',
                    'phone', '+1305555' || lpad(mod(n, 10000)::text, 4, '0')
                ),
                'responsible_attorney', jsonb_build_object('id', 42 + mod(n, 7), 'name', 'Attorney ' || mod(n, 7)),
                'description', 'Consultation requested through the web intake form; client prefers email.'
            )
        ),
        jsonb_build_object(
            'content-type', 'application/json',
            'user-agent', 'Clio-Webhooks/2.0',
            'webhook-id', 'msg_' || substr(md5(n::text), 1, 24),
            'webhook-timestamp', floor(extract(epoch FROM received_at))::bigint::text,
            'webhook-signature', 'v1,' || encode(sha256(n::text::bytea), 'base64')
        ),
        status,
        CASE WHEN status IN ('succeeded', 'manually_resolved') THEN true
             WHEN status IN ('queued', 'processing') THEN NULL ELSE false END,
        CASE WHEN status = 'succeeded' THEN CASE WHEN r_misc < 0.95 THEN 'created_tasks' ELSE 'ignored' END
             WHEN status = 'manually_resolved' THEN 'manually_resolved'
             WHEN k > 0 THEN 'partial_failure'
             WHEN status IN ('failed', 'dead_letter') THEN 'failed'
             ELSE '' END,
        CASE WHEN k > 0 THEN 10 - k
             WHEN status = 'succeeded' AND r_misc < 0.95 THEN 10 ELSE 0 END,
        k,
        CASE WHEN k > 0 THEN (
            SELECT jsonb_agg(jsonb_build_object(
                'task_title', ({_array(TITLES)})[j],
                'task_number', j,
                'error', {_case(_code_of("id", "j"), messages)},
                'error_code', {_code_of("id", "j")}
            ) ORDER BY j)
            FROM generate_series(11 - k, 10) AS j
        ) END,
        attempts,
        attempts,
        3,
        0,
        last_attempt_at,
        completed_at,
        CASE WHEN k > 0 THEN k || ' item(s) failed; #' || (11 - k) || ': ' || {_case("last_error_code", messages)}
             ELSE {_case("last_error_code", messages)} END,
        last_error_code,
        CASE WHEN status = 'retry_scheduled' THEN %(now)s::timestamptz + make_interval(secs => 600 * r_dur) END,
        CASE WHEN status = 'processing' THEN 'bench-seed-task' ELSE '' END,
        CASE WHEN status = 'processing' THEN received_at + interval '5 minutes' END,
        received_at,
        coalesce(completed_at, last_attempt_at, received_at),
        organization_id,
        source_id
    FROM timed
    ORDER BY received_at
    """  # noqa: S608 - only this module's literals are interpolated


def items_sql() -> str:
    """The ledger of events with failed items, in the order processing would have written it.
    Partial failures get all ten items; events retrying, dead-lettered or resolved only their
    failed ones (enough for the error-code filter and the dashboard's failure ranking)."""
    messages = {code.value: message for code, message in ERROR_MESSAGES.items()}
    kinds = {code.value: failure_kind(code).value for code in ErrorCode}
    code = _code_of("e.id", "j")
    return f"""
    INSERT INTO webhooks_app_eventitem (
        number, title, description, assignee_role, due_at, status, idempotency_key, assignee,
        downstream_id, error, error_code, failure_kind, attempts, updated_at, event_id
    )
    SELECT j,
           ({_array(TITLES)})[j],
           '',
           ({_array(ROLES)})[j],
           e.received_at + make_interval(days => (ARRAY[{", ".join(map(str, DUE_DAYS))}])[j]),
           CASE WHEN failed THEN 'failed' ELSE 'succeeded' END,
           e.id::text || ':' || j,
           CASE WHEN failed THEN '' ELSE ({_array(ROLES)})[j] || '.jones' END,
           CASE WHEN failed THEN '' ELSE 'task-' || substr(md5(e.id::text || j), 1, 12) END,
           CASE WHEN failed THEN {_case(code, messages)} ELSE '' END,
           CASE WHEN failed THEN {code} ELSE '' END,
           CASE WHEN failed THEN {_case(code, kinds)} ELSE '' END,
           CASE WHEN failed THEN greatest(e.attempts, 1) ELSE 1 END,
           e.updated_at,
           e.id
    FROM {TABLE} e
    CROSS JOIN LATERAL generate_series(CASE WHEN e.status = 'partial_failure' THEN 1 ELSE 11 - e.tasks_failed END, 10) j
    CROSS JOIN LATERAL (SELECT j > 10 - e.tasks_failed AS failed) f
    WHERE e.tasks_failed > 0
    ORDER BY e.received_at, j
    """  # noqa: S608 - only this module's literals are interpolated


# --- Seeding --------------------------------------------------------------------------------


def _marker() -> dict[str, Any] | None:
    with connections[ALIAS].cursor() as cursor:
        cursor.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", [TABLE])
        row = cursor.fetchone()
    try:
        marker = json.loads(row[0]) if row and row[0] else None
    except ValueError:
        return None
    return marker if isinstance(marker, dict) and marker.get("marker") == MARKER else None


def events_count() -> int:
    with connections[ALIAS].cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {TABLE}")  # noqa: S608 - a constant
        return int(cursor.fetchone()[0])


def _schema() -> str:
    """The indexes of the two seeded tables, as a digest: a new or changed index means a new
    seed, so that every index is built the way production builds it (entry by entry as events
    arrive), not packed by a CREATE INDEX over existing rows, which would flatter the figures."""
    with connections[ALIAS].cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename IN (%s, 'webhooks_app_eventitem') ORDER BY indexname",
            [TABLE],
        )
        definitions = "\n".join(row[0] for row in cursor.fetchall())
    return hashlib.sha256(definitions.encode()).hexdigest()[:16]


def seed_state(max_age: timedelta) -> tuple[bool, str]:
    """(reusable, why)."""
    marker = _marker()
    if marker is None:
        return False, "no seed marker"
    if marker.get("version") != SEED_VERSION or marker.get("events") != EVENTS:
        return False, f"seed marker {marker} is not version {SEED_VERSION} with {EVENTS} events"
    if marker.get("schema") != _schema():
        return False, "the indexes changed since the seed"
    count = events_count()
    if count != EVENTS:
        return False, f"{count} events in the table, the marker says {EVENTS}"
    seeded_at = datetime.fromisoformat(marker["seeded_at"])
    age = timezone.now() - seeded_at
    if age > max_age:
        return False, f"seeded {age.total_seconds() / 3600:.1f} h ago (more than {max_age.total_seconds() / 3600:g} h)"
    return True, f"{count} events seeded at {marker['seeded_at']} ({age.total_seconds() / 60:.0f} min ago)"


def _organizations_create() -> dict[str, Source]:
    sources: dict[str, Source] = {}
    for slug, name, _share, srcs in ORGANIZATIONS:
        organization = Organization.objects.using(ALIAS).create(slug=slug, name=name)
        TaskTemplate.objects.using(ALIAS).bulk_create(
            TaskTemplate(
                organization=organization,
                trigger_event_type=demo.EVENT_TYPE,
                stage=demo.STAGE,
                task_number=number,
                title=title,
                assignee_role=role,
                due_offset_days=due,
            )
            for number, title, role, due in demo.CONSULTATION_TASKS
        )
        for source_slug, kind, _source_share in srcs:
            sources[source_slug] = Source.objects.using(ALIAS).create(
                organization=organization,
                slug=source_slug,
                kind=kind,
                signing_scheme=SigningScheme.STANDARD_WEBHOOKS,
                signing_secret_entries=signing_secret_entries_for(new_signing_secret()),
                connector=ConnectorKind.LOCAL,
            )
    return sources


def seed(log: Callable[[str], None]) -> float:
    """Empty the million database and fill it; returns the seconds it took."""
    started = time.perf_counter()
    infra.database_truncate(using=ALIAS)
    sources = _organizations_create()
    now = timezone.now()
    connection = connections[ALIAS]
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.4242)")
        log(f"  inserting {EVENTS:,} events (INSERT ... SELECT FROM generate_series)")
        cursor.execute(events_sql(sources), {"now": now, "total": EVENTS})
        events_done = time.perf_counter()
        log(f"  events in {events_done - started:.1f}s; inserting the item ledger of failed events")
        cursor.execute(items_sql())
        items = cursor.rowcount
        log(f"  {items:,} items in {time.perf_counter() - events_done:.1f}s; VACUUM ANALYZE")
        # VACUUM, not only ANALYZE: a table of old rows has an up-to-date visibility map in
        # production (autovacuum's insert threshold, PostgreSQL >= 13), which index-only
        # scans depend on. A fresh bulk load has none until the first vacuum.
        for table in (TABLE, "webhooks_app_eventitem", "webhooks_app_source", "webhooks_app_organization"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        marker = {
            "marker": MARKER,
            "version": SEED_VERSION,
            "events": EVENTS,
            "seeded_at": now.isoformat(),
            "schema": _schema(),
        }
        cursor.execute(f"COMMENT ON TABLE {TABLE} IS {_quote(json.dumps(marker))}")
    return time.perf_counter() - started


def prepare(*, reseed: bool, max_age: timedelta, log: Callable[[str], None]) -> str:
    """Migrate the million database and make sure it holds a usable seed. Returns a note."""
    call_command("migrate", database=ALIAS, interactive=False, verbosity=0)
    reusable, why = (False, "--reseed") if reseed else seed_state(max_age)
    if reusable:
        log(f"million: reusing the seed: {why}")
        return f"seed reused: {why}"
    log(f"million: seeding ({why})")
    seconds = seed(log)
    log(f"million: seeded in {seconds:.1f}s")
    return f"seeded {EVENTS:,} events in {seconds:.1f}s ({why})"


def credentials() -> tuple[int, str]:
    """A superuser for the admin, and a fresh API key of the main organization: (org id, key)."""
    users = get_user_model()._default_manager.db_manager(ALIAS)
    user = users.filter(username=ADMIN_USER).first()
    if user is None:
        user = users.create_superuser(ADMIN_USER, "bench@example.com", ADMIN_PASSWORD)
    else:
        user.set_password(ADMIN_PASSWORD)
        user.save(using=ALIAS)
    organization = Organization.objects.using(ALIAS).get(slug=ORGANIZATIONS[0][0])
    ApiKey.objects.using(ALIAS).filter(organization=organization, name=API_KEY_NAME).delete()
    key = ApiKey(organization=organization, name=API_KEY_NAME)
    raw_key = key.set_new_key()
    key.save(using=ALIAS)
    return organization.pk, raw_key
