"""The detectors of diagnostics (ops_app.diagnostics): each reads the configuration and recent
traffic and returns what is wrong now, as findings. A finding says what, how bad, what to do,
and which admin page does it; a problem no detector finds any more has been fixed."""

import itertools
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, OuterRef
from django.db.models.fields.json import KT
from django.urls import reverse
from django.utils.timesince import timesince

from ops_app.models import Diagnostic, DiagnosticKind, DiagnosticSeverity
from ops_app.models.alerts import scope_key
from webhooks_app.breakers import CLOSED, OPEN, breaker_states
from webhooks_app.errors import ErrorCode
from webhooks_app.handlers.task_generation import MISSING_ROLE_CODES
from webhooks_app.models import AssigneeRule, Organization, Source, TaskTemplate, WebhookEvent
from webhooks_app.refusals import disabled_source_traffic
from workflows_app.models import Disposition, Workflow, WorkflowRun, WorkflowStep
from workflows_app.models.calls import DispositionAction, DispositionActionType
from workflows_app.models.leads import phone_e164
from workflows_app.models.runs import OPEN_RUN_STATUSES
from workflows_app.models.workflows import NEEDS_PHONE

# A silent source is judged on the week before its last event, looked for this far back.
SILENT_RHYTHM = timedelta(days=7)
SILENT_LOOKBACK = timedelta(days=14)


@dataclass(frozen=True)
class Finding:
    kind: DiagnosticKind
    severity: DiagnosticSeverity
    organization_id: int | None
    subject: str
    message: str
    fix: str
    link: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, scope_key(self.organization_id), self.subject[:200])


def _url(name: str, *args: object, **params: object) -> str:
    url = reverse(name, args=args)
    return f"{url}?{urlencode(params)}" if params else url


def _ago(then: datetime, now: datetime) -> str:
    return timesince(then, now).split(",")[0]


# --- Templates whose role has no assignee for a location seen lately ------------------------------


def recent_locations(*, organization_id: int, since: datetime) -> dict[str, datetime]:
    """The locations the organization's events named (payload data.location) and when each was
    last seen, for those seen since `since`.

    On PostgreSQL a skip scan over event_org_location_idx: each step finds the next location
    after the previous one with one index probe, then one more probe finds its newest event,
    so the cost grows with the number of locations, not of events."""
    if connection.vendor != "postgresql":
        rows = (
            WebhookEvent.objects.filter(organization_id=organization_id, received_at__gte=since)
            .annotate(location=KT("payload__data__location"))
            .filter(location__isnull=False)
            .order_by()
            .values_list("location", "received_at")
        )
        found: dict[str, datetime] = {}
        for location, at in rows:
            if location and (location not in found or at > found[location]):
                found[location] = at
        return found
    table = WebhookEvent._meta.db_table
    loc = "(payload #>> '{data,location}')"
    sql = f"""
        WITH RECURSIVE locations(location) AS (
            SELECT min({loc}) FROM {table} WHERE organization_id = %(org)s AND {loc} IS NOT NULL
            UNION ALL
            SELECT (SELECT min({loc}) FROM {table} WHERE organization_id = %(org)s AND {loc} > l.location)
            FROM locations l WHERE l.location IS NOT NULL
        )
        SELECT l.location,
               (SELECT max(received_at) FROM {table} WHERE organization_id = %(org)s AND {loc} = l.location)
        FROM locations l WHERE l.location IS NOT NULL
    """  # noqa: S608 - the table name and the expression are ours; values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, {"org": organization_id})
        return {location: at for location, at in cursor.fetchall() if location and at and at >= since}


def assignee_rules_missing(*, now: datetime) -> list[Finding]:
    """Every template role needs an assignee rule for every location the organization's events
    named in the last DIAGNOSTIC_LOCATION_DAYS days (a "*" rule covers them all); without one
    the next event at that location fails its items with ERR_ASSIGNEE_NO_CSC (or its role's
    code), found here before it fails."""
    templates: dict[int, dict[str, list[TaskTemplate]]] = defaultdict(lambda: defaultdict(list))
    for template in TaskTemplate.objects.order_by("stage", "task_number"):
        templates[template.organization_id][template.assignee_role].append(template)
    if not templates:
        return []
    covered = set(
        AssigneeRule.objects.filter(organization_id__in=templates).values_list("organization_id", "role", "location")
    )
    since = now - timedelta(days=settings.MENDHOOK_DIAGNOSTIC_LOCATION_DAYS)
    names = dict(Organization.objects.filter(id__in=templates).values_list("id", "name"))
    findings = []
    for organization_id, roles in templates.items():
        locations = recent_locations(organization_id=organization_id, since=since)
        for role, role_templates in sorted(roles.items()):
            if (organization_id, role, AssigneeRule.ANY_LOCATION) in covered:
                continue
            code = MISSING_ROLE_CODES.get(role, (ErrorCode.ASSIGNEE_NOT_FOUND, ""))[0]
            example = role_templates[0]
            for location, last_seen in sorted(locations.items()):
                if (organization_id, role, location) in covered:
                    continue
                count = len(role_templates)
                findings.append(
                    Finding(
                        kind=DiagnosticKind.ASSIGNEE_RULE_MISSING,
                        severity=DiagnosticSeverity.CRITICAL,
                        organization_id=organization_id,
                        subject=f"{role}@{location}",
                        message=(
                            f"No {role} is assigned for location '{location}' (in events until "
                            f"{_ago(last_seen, now)} ago): {count} template{'s' if count > 1 else ''} "
                            f"need one, e.g. '{example.stage} #{example.task_number}: {example.title}'. "
                            f"Their tasks will fail with {code}."
                        ),
                        fix=(
                            f"Add an assignee rule for role '{role}' at location '{location}' in "
                            f"{names.get(organization_id, '?')} (or at '*' for every location)."
                        ),
                        link=_url(
                            "admin:webhooks_app_assigneerule_add",
                            organization=organization_id,
                            role=role,
                            location=location,
                        ),
                    )
                )
    return findings


# --- Sources silent far longer than usual ----------------------------------------------------------


@dataclass(frozen=True)
class Rhythm:
    events: int
    median_gap: float  # seconds
    last_at: datetime


def source_rhythms(*, now: datetime) -> dict[int, Rhythm]:
    """Per source with events in the last SILENT_LOOKBACK: how many it sent in the week before
    its last event, the median gap between them, and when the last came. One pass over the
    lookback's events (event_received_idx), grouped on the server on PostgreSQL."""
    since = now - SILENT_LOOKBACK
    if connection.vendor != "postgresql":
        times: dict[int, list[datetime]] = defaultdict(list)
        rows = WebhookEvent.objects.filter(received_at__gte=since, received_at__lte=now).order_by("received_at")
        for source_id, at in rows.values_list("source_id", "received_at"):
            times[source_id].append(at)
        rhythms = {}
        for source_id, stamps in times.items():
            week = [t for t in stamps if t >= stamps[-1] - SILENT_RHYTHM]
            gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(week)]
            if gaps:
                rhythms[source_id] = Rhythm(len(week), statistics.median(gaps), stamps[-1])
        return rhythms
    sql = f"""
        WITH recent AS (
            SELECT source_id, received_at FROM {WebhookEvent._meta.db_table}
            WHERE received_at >= %(since)s AND received_at <= %(now)s
        ), last AS (
            SELECT source_id, max(received_at) AS last_at FROM recent GROUP BY source_id
        ), gaps AS (
            SELECT r.source_id, extract(epoch FROM r.received_at
                   - lag(r.received_at) OVER (PARTITION BY r.source_id ORDER BY r.received_at)) AS gap
            FROM recent r JOIN last l ON l.source_id = r.source_id
            WHERE r.received_at >= l.last_at - %(rhythm)s::interval
        )
        SELECT g.source_id, count(*) + 1, percentile_cont(0.5) WITHIN GROUP (ORDER BY g.gap), l.last_at
        FROM gaps g JOIN last l ON l.source_id = g.source_id
        WHERE g.gap IS NOT NULL
        GROUP BY g.source_id, l.last_at
    """  # noqa: S608 - the table name is ours; values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, {"since": since, "now": now, "rhythm": f"{SILENT_RHYTHM.days} days"})
        return {source_id: Rhythm(int(n), float(median), last) for source_id, n, median, last in cursor.fetchall()}


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def sources_silent(*, now: datetime) -> list[Finding]:
    """Enabled sources whose last event is older than DIAGNOSTIC_SILENT_FACTOR times their
    median gap over the week before it (on at least DIAGNOSTIC_SILENT_MIN_EVENTS events, and
    never sooner than DIAGNOSTIC_SILENT_MIN_SECONDS). One silent past the lookback stays
    flagged until it sends again: it has not recovered, it has only left the window."""
    rhythms = source_rhythms(now=now)
    factor = settings.MENDHOOK_DIAGNOSTIC_SILENT_FACTOR
    floor = settings.MENDHOOK_DIAGNOSTIC_SILENT_MIN_SECONDS
    still_open = {
        int(d.subject.removeprefix("source:")): d
        for d in Diagnostic.objects.open().filter(kind=DiagnosticKind.SOURCE_SILENT)
    }
    findings = []
    for source in Source.objects.filter(enabled=True).order_by("slug"):
        rhythm = rhythms.get(source.pk)
        if rhythm is not None:
            silent = (now - rhythm.last_at).total_seconds()
            limit = max(factor * rhythm.median_gap, floor)
            if rhythm.events < settings.MENDHOOK_DIAGNOSTIC_SILENT_MIN_EVENTS or silent <= limit:
                continue
            message = (
                f"Source '{source.slug}' has sent nothing for {_duration(silent)}; in the week before, "
                f"its {rhythm.events} events came a median {_duration(rhythm.median_gap)} apart."
            )
        elif source.pk in still_open:
            message = f"Source '{source.slug}' has sent nothing for over {SILENT_LOOKBACK.days} days."
        else:
            continue
        findings.append(
            Finding(
                kind=DiagnosticKind.SOURCE_SILENT,
                severity=DiagnosticSeverity.WARNING,
                organization_id=source.organization_id,
                subject=f"source:{source.pk}",
                message=message,
                fix=(
                    f"Check the sender: that its webhook still points at /webhooks/{source.slug}/, that its "
                    "deliveries are accepted (a bad signature answers 401 and stores nothing; see the error "
                    "records) and that its service is up. Disable the source if it was retired."
                ),
                link=_url("admin:webhooks_app_source_change", source.pk),
            )
        )
    return findings


# --- Disabled sources still being sent to ----------------------------------------------------------


def disabled_sources_receiving(*, now: datetime) -> list[Finding]:
    """Disabled sources that intake refused a request for within the traffic window
    (webhooks_app.refusals counts them in Redis): the sender still delivers, and every delivery
    is answered 404 and lost unless it retries."""
    disabled = {s.pk: s for s in Source.objects.filter(enabled=False)}
    window = timedelta(seconds=settings.MENDHOOK_DIAGNOSTIC_DISABLED_TRAFFIC_SECONDS)
    findings = []
    for source_id, traffic in sorted(disabled_source_traffic(sorted(disabled)).items()):
        if traffic.last_at < now - window:
            continue
        source = disabled[source_id]
        findings.append(
            Finding(
                kind=DiagnosticKind.DISABLED_SOURCE_TRAFFIC,
                severity=DiagnosticSeverity.WARNING,
                organization_id=source.organization_id,
                subject=f"source:{source_id}",
                message=(
                    f"Source '{source.slug}' is disabled but was sent {traffic.requests} request"
                    f"{'s' if traffic.requests != 1 else ''} since {traffic.first_at:%Y-%m-%d %H:%M} UTC, the last "
                    f"{_ago(traffic.last_at, now)} ago; each was answered 404 and not stored."
                ),
                fix=(
                    "Enable the source again if these events are wanted, or remove the webhook at the sender "
                    "if the source was retired."
                ),
                link=_url("admin:webhooks_app_source_change", source_id),
            )
        )
    return findings


# --- Dispositions that start a workflow that cannot run --------------------------------------------


def disposition_workflows_unusable(*, now: datetime) -> list[Finding]:
    """Enabled start_workflow actions of dispositions whose workflow is missing (or another
    organization's), inactive, or has no steps: every call ending with that disposition fails
    that action."""
    actions = list(
        DispositionAction.objects.filter(enabled=True, action_type=DispositionActionType.START_WORKFLOW)
        .select_related("disposition")
        .order_by("id")
    )
    wanted = {a.config.get("workflow_id") for a in actions if isinstance(a.config, dict)}
    ids = [w for w in wanted if isinstance(w, int)]
    workflows = {w.pk: w for w in Workflow.objects.filter(id__in=ids).annotate(step_count=Count("steps"))}
    findings = []
    for action in actions:
        disposition: Disposition = action.disposition
        workflow_id = action.config.get("workflow_id") if isinstance(action.config, dict) else None
        workflow = workflows.get(workflow_id) if isinstance(workflow_id, int) else None
        if workflow is None or workflow.organization_id != disposition.organization_id:
            problem = f"workflow #{workflow_id}, which does not exist in its organization"
            fix = "Point the action at an existing workflow of this organization, or disable the action."
            link = _url("admin:workflows_app_disposition_change", disposition.pk)
        elif not workflow.active:
            problem = f"workflow '{workflow.name}', which is inactive"
            fix = f"Activate workflow '{workflow.name}', or point the action at an active one."
            link = _url("admin:workflows_app_workflow_change", workflow.pk)
        elif not workflow.step_count:
            problem = f"workflow '{workflow.name}', which has no steps"
            fix = f"Add steps to workflow '{workflow.name}', or point the action at another workflow."
            link = _url("admin:workflows_app_workflow_change", workflow.pk)
        else:
            continue
        findings.append(
            Finding(
                kind=DiagnosticKind.DISPOSITION_WORKFLOW_UNUSABLE,
                severity=DiagnosticSeverity.CRITICAL,
                organization_id=disposition.organization_id,
                subject=f"disposition-action:{action.pk}",
                message=(
                    f"Disposition '{disposition.name}' starts {problem}: every call ending with it "
                    "will fail that action."
                ),
                fix=fix,
                link=link,
            )
        )
    return findings


# --- Leads without a valid phone in workflows that call or text ------------------------------------


def _phone_valid(phone: str) -> bool:
    # Lead.phone_valid's rule, without building a Lead per row.
    if not phone:
        return False
    try:
        phone_e164(phone)
    except ValueError:
        return False
    return True


def leads_without_phone(*, now: datetime) -> list[Finding]:
    """Leads in open runs (active, needs review) whose current or later steps call or text, with
    no phone or one that is not a valid number: those steps will fail."""
    calls_ahead = WorkflowStep.objects.filter(
        workflow=OuterRef("workflow"), action_type__in=NEEDS_PHONE, position__gte=OuterRef("current_position")
    )
    rows = (
        WorkflowRun.objects.filter(status__in=OPEN_RUN_STATUSES)
        .filter(Exists(calls_ahead))
        .order_by("lead_id", "workflow__name")
        .values_list("lead_id", "lead__name", "lead__phone", "organization_id", "workflow__name")
    )
    leads: dict[int, tuple[str, str, int, list[str]]] = {}
    valid: dict[str, bool] = {}
    for lead_id, name, phone, organization_id, workflow in rows:
        if phone not in valid:
            valid[phone] = _phone_valid(phone)
        if valid[phone]:
            continue
        leads.setdefault(lead_id, (name, phone, organization_id, []))[3].append(workflow)
    findings = []
    for lead_id, (name, phone, organization_id, workflows) in leads.items():
        what = "no phone" if not phone else f"phone '{phone}', which is not a valid number"
        names = ", ".join(f"'{w}'" for w in dict.fromkeys(workflows))
        findings.append(
            Finding(
                kind=DiagnosticKind.LEAD_PHONE_INVALID,
                severity=DiagnosticSeverity.WARNING,
                organization_id=organization_id,
                subject=f"lead:{lead_id}",
                message=(
                    f"Lead '{name}' has {what}, and its open run of {names} has call or SMS steps ahead; "
                    "they will fail."
                ),
                fix=f"Give lead '{name}' a valid phone number (E.164, e.g. +12025550123), or cancel the run.",
                link=_url("admin:workflows_app_lead_change", lead_id),
            )
        )
    return findings


# --- Open circuit breakers -------------------------------------------------------------------------


def breakers_open(*, now: datetime) -> list[Finding]:
    """Breakers open or half-open. A Clio connection's breaker ("clio:<source slug>") belongs to
    its source's organization; the shared providers' are global."""
    states = [s for s in breaker_states() if s.state != CLOSED]
    if not states:
        return []
    owners = dict(Source.objects.values_list("slug", "organization_id"))
    findings = []
    for breaker in states:
        prefix, _, slug = breaker.name.partition(":")
        organization_id = owners.get(slug) if prefix == "clio" else None
        since = f" since {_ago(breaker.opened_at, now)} ago" if breaker.opened_at else ""
        findings.append(
            Finding(
                kind=DiagnosticKind.BREAKER_OPEN,
                severity=DiagnosticSeverity.CRITICAL if breaker.state == OPEN else DiagnosticSeverity.WARNING,
                organization_id=organization_id,
                subject=breaker.name,
                message=(
                    f"Circuit breaker '{breaker.name}' is {breaker.state.replace('_', '-')}{since} after "
                    f"{breaker.failures} failure{'s' if breaker.failures != 1 else ''}: calls to it fail fast "
                    "and their work waits."
                ),
                fix=(
                    f"Check that system's status. Every {breaker.reset_seconds:.0f} s one probe call tests it and a "
                    "success closes the breaker; once you know it is back, reset it from the circuit breaker list."
                ),
                link=_url("admin:ops_app_breaker_changelist", q=breaker.name),
            )
        )
    return findings


Detector = Callable[..., list[Finding]]

# Each kind and the detector that finds it; a kind whose detector failed keeps its open rows.
DETECTORS: tuple[tuple[DiagnosticKind, Detector], ...] = (
    (DiagnosticKind.ASSIGNEE_RULE_MISSING, assignee_rules_missing),
    (DiagnosticKind.SOURCE_SILENT, sources_silent),
    (DiagnosticKind.DISABLED_SOURCE_TRAFFIC, disabled_sources_receiving),
    (DiagnosticKind.DISPOSITION_WORKFLOW_UNUSABLE, disposition_workflows_unusable),
    (DiagnosticKind.LEAD_PHONE_INVALID, leads_without_phone),
    (DiagnosticKind.BREAKER_OPEN, breakers_open),
)


def unique(findings: Iterable[Finding]) -> list[Finding]:
    return list({f.key: f for f in findings}.values())
