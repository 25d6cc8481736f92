"""Alerts on trends: beat measures each condition per organization and globally, opens an Alert
when one starts and closes it when it recovers, and each start or recovery is sent once.

Safe with two evaluations at once: the unique constraint on firing alerts lets only one insert
start an episode, and the conditional UPDATE that resolves it lets only one end it; only the
winner publishes the notification. Many starts and recoveries in one evaluation go out as one
digest message, so an outage that trips every condition is one Slack post, not twenty.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sentry_sdk
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Avg, Count, Min, Q
from django.utils import timezone

from config.publishing import publish, queue_depths
from config.queues import Queue
from ops_app.models import Alert, AlertCondition, AlertState
from ops_app.models.alerts import scope_key
from webhooks_app.breakers import CLOSED, breaker_states
from webhooks_app.models import EventStatus, Organization, WebhookEvent
from webhooks_app.models.events import NEEDS_HUMAN, WAITING
from webhooks_app.services.alerting import AlertDeliveryError, alert_post

logger = logging.getLogger(__name__)

NOTIFY_TASK = "ops_app.tasks.send_alert_notifications"
WINDOW = timedelta(hours=1)
# Outcomes that close an event's processing: what a success rate and an average count. Manual
# resolutions are left out: a person settling fifty old events is not this hour's traffic.
OUTCOMES = (EventStatus.SUCCEEDED, *NEEDS_HUMAN)


@dataclass(frozen=True)
class Reading:
    condition: AlertCondition
    organization_id: int | None
    value: float
    threshold: float
    firing: bool
    message: str
    subject: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.condition, scope_key(self.organization_id), self.subject)


@dataclass
class Evaluation:
    started: list[Alert] = field(default_factory=list)
    recovered: list[Alert] = field(default_factory=list)
    # Conditions that could not be measured this time (their open alerts are left as they are).
    notes: list[str] = field(default_factory=list)


# --- Measuring ---------------------------------------------------------------------------------


def _where(organization_id: int | None, names: dict[int, str]) -> str:
    return "across all organizations" if organization_id is None else f"in {names.get(organization_id, '?')}"


def _outcome_readings(*, now: datetime) -> list[Reading]:
    """Dead letters, success rate and average attempts of the last hour, per organization and in
    total, from one grouped query (event_org_completed_idx: organization, completed_at, status)."""
    rows = (
        WebhookEvent.objects.filter(completed_at__gte=now - WINDOW, completed_at__lte=now, status__in=OUTCOMES)
        .order_by()
        .values("organization_id")
        .annotate(
            total=Count("id"),
            succeeded=Count("id", filter=Q(status=EventStatus.SUCCEEDED)),
            dead=Count("id", filter=Q(status=EventStatus.DEAD_LETTER)),
            attempts=Avg("attempts"),
        )
    )
    per_org: dict[int | None, dict[str, float]] = {}
    overall = {"total": 0.0, "succeeded": 0.0, "dead": 0.0, "attempt_sum": 0.0}
    for row in rows:
        figures = {k: float(row[k] or 0) for k in ("total", "succeeded", "dead", "attempts")}
        per_org[row["organization_id"]] = figures
        for k in ("total", "succeeded", "dead"):
            overall[k] += figures[k]
        overall["attempt_sum"] += figures["attempts"] * figures["total"]
    total = overall["total"]
    per_org[None] = {
        "total": total,
        "succeeded": overall["succeeded"],
        "dead": overall["dead"],
        "attempts": overall["attempt_sum"] / total if total else 0.0,
    }
    names = dict(Organization.objects.filter(id__in=[o for o in per_org if o]).values_list("id", "slug"))

    max_dead = settings.MENDHOOK_ALERT_DEAD_LETTERS_PER_HOUR
    min_rate = settings.MENDHOOK_ALERT_SUCCESS_RATE_MIN
    max_attempts = settings.MENDHOOK_ALERT_AVERAGE_ATTEMPTS_MAX
    min_volume = settings.MENDHOOK_ALERT_MIN_VOLUME
    readings = []
    for org, f in per_org.items():
        where = _where(org, names)
        readings.append(
            Reading(
                AlertCondition.DEAD_LETTERS,
                org,
                f["dead"],
                max_dead,
                f["dead"] > max_dead,
                f"{f['dead']:.0f} dead letters in the last hour {where} (more than {max_dead})",
            )
        )
        # Too few events to judge: 1 failure in 3 is not a 67 % failure rate worth a page.
        enough = f["total"] >= min_volume
        rate = f["succeeded"] / f["total"] if f["total"] else 1.0
        readings.append(
            Reading(
                AlertCondition.SUCCESS_RATE,
                org,
                rate,
                min_rate,
                enough and rate < min_rate,
                f"success rate {rate:.1%} over the last hour {where} ({f['total']:.0f} events; below {min_rate:.0%})",
            )
        )
        readings.append(
            Reading(
                AlertCondition.AVERAGE_ATTEMPTS,
                org,
                f["attempts"],
                max_attempts,
                enough and f["attempts"] > max_attempts,
                f"{f['attempts']:.2f} attempts per event on average over the last hour {where} "
                f"(more than {max_attempts})",
            )
        )
    return readings


def _waiting_readings(*, now: datetime) -> list[Reading]:
    """The oldest waiting event per organization and overall (event_org_open_idx). A waiting
    event's updated_at is when it started waiting (ops_app.queue_health)."""
    rows = (
        WebhookEvent.objects.filter(status__in=WAITING)
        .order_by()
        .values("organization_id")
        .annotate(oldest=Min("updated_at"))
    )
    oldest: dict[int | None, datetime] = {row["organization_id"]: row["oldest"] for row in rows}
    if oldest:
        oldest[None] = min(oldest.values())
    names = dict(Organization.objects.filter(id__in=[o for o in oldest if o]).values_list("id", "slug"))
    limit = settings.MENDHOOK_ALERT_OLDEST_WAITING_MINUTES
    readings = []
    for org, since in oldest.items():
        minutes = max(0.0, (now - since).total_seconds() / 60)
        readings.append(
            Reading(
                AlertCondition.OLDEST_WAITING,
                org,
                minutes,
                limit,
                minutes > limit,
                f"the oldest waiting event {_where(org, names)} has waited {minutes:.0f} min (more than {limit} min)",
            )
        )
    return readings


def _queue_readings() -> list[Reading]:
    limit = settings.MENDHOOK_ALERT_QUEUE_DEPTH_MAX
    depths = queue_depths(q.value for q in Queue)
    return [
        Reading(
            AlertCondition.QUEUE_DEPTH,
            None,
            depth,
            limit,
            depth > limit,
            f"{depth} messages waiting in queue '{name}' (more than {limit})",
            subject=name,
        )
        for name, depth in depths.items()
    ]


def _breaker_readings(*, now: datetime) -> list[Reading]:
    """Breakers open longer than the limit (half-open counts as open: the probe has not yet
    shown the downstream is back)."""
    limit = settings.MENDHOOK_ALERT_BREAKER_OPEN_MINUTES
    readings = []
    for breaker in breaker_states():
        is_open = breaker.state != CLOSED and breaker.opened_at is not None
        minutes = max(0.0, (now - breaker.opened_at).total_seconds() / 60) if breaker.opened_at and is_open else 0.0
        readings.append(
            Reading(
                AlertCondition.BREAKER_OPEN,
                None,
                minutes,
                limit,
                is_open and minutes > limit,
                f"circuit breaker '{breaker.name}' has been open for {minutes:.0f} min (more than {limit} min)",
                subject=breaker.name[:100],
            )
        )
    return readings


def alert_readings(*, now: datetime) -> tuple[list[Reading], set[AlertCondition], list[str]]:
    """Every reading, the conditions measured (an open alert of a measured condition with no
    reading has recovered: its scope had nothing to count), and notes on what was skipped."""
    readings = [*_outcome_readings(now=now), *_waiting_readings(now=now)]
    measured = {
        AlertCondition.DEAD_LETTERS,
        AlertCondition.SUCCESS_RATE,
        AlertCondition.AVERAGE_ATTEMPTS,
        AlertCondition.OLDEST_WAITING,
    }
    notes = []
    try:
        readings += _queue_readings()
        measured.add(AlertCondition.QUEUE_DEPTH)
    except Exception as exc:  # noqa: BLE001 - an unreachable broker: unknown, not recovered
        notes.append(f"queue depth skipped: broker unreachable ({type(exc).__name__})")
    readings += _breaker_readings(now=now)
    measured.add(AlertCondition.BREAKER_OPEN)
    return readings, measured, notes


# --- Opening and closing episodes --------------------------------------------------------------


def _alert_start(reading: Reading, now: datetime) -> Alert | None:
    try:
        with transaction.atomic():
            return Alert.objects.create(
                condition=reading.condition,
                organization_id=reading.organization_id,
                scope=scope_key(reading.organization_id),
                subject=reading.subject,
                started_at=now,
                last_value=reading.value,
                threshold=reading.threshold,
                message=reading.message,
            )
    except IntegrityError:
        return None  # another evaluation started this episode a moment ago and notifies it


def alerts_evaluate(*, now: datetime | None = None) -> Evaluation:
    """Measure, open and close alerts, and publish one notification for what changed."""
    now = now or timezone.now()
    readings, measured, notes = alert_readings(now=now)
    result = Evaluation(notes=notes)
    open_alerts = {(a.condition, a.scope, a.subject): a for a in Alert.objects.filter(state=AlertState.FIRING)}
    for reading in readings:
        alert = open_alerts.pop(reading.key, None)
        if reading.firing and alert is None:
            started = _alert_start(reading, now)
            if started is not None:
                result.started.append(started)
        elif reading.firing and alert is not None:
            Alert.objects.filter(id=alert.id, state=AlertState.FIRING).update(
                last_value=reading.value, message=reading.message, updated_at=now
            )
        elif alert is not None and Alert.objects.resolve(alert_id=alert.id, now=now, value=reading.value):
            result.recovered.append(alert)
    for alert in open_alerts.values():
        if alert.condition in measured and Alert.objects.resolve(alert_id=alert.id, now=now, value=None):
            result.recovered.append(alert)
    for note in notes:
        logger.info("alert evaluation: %s", note)
    if result.started or result.recovered:
        try:
            publish(NOTIFY_TASK, [a.id for a in result.started], [a.id for a in result.recovered])
        except Exception:  # the episode is recorded and visible; only its message is lost
            logger.exception("could not queue the notification for %s alert change(s)", len(result.started))
    return result


# --- Telling people ----------------------------------------------------------------------------


def _line(alert: Alert, state: AlertState) -> str:
    mark = ":rotating_light:" if state == AlertState.FIRING else ":white_check_mark:"
    verb = "started" if state == AlertState.FIRING else "recovered"
    return f"{mark} {alert.get_condition_display()} {verb}: {alert.message}"


def alerts_text(started: Iterable[Alert], recovered: Iterable[Alert]) -> str:
    lines = [_line(a, AlertState.FIRING) for a in started] + [_line(a, AlertState.RESOLVED) for a in recovered]
    if len(lines) == 1:
        return f"mendhook: {lines[0]}"
    firing = sum(1 for line in lines if line.startswith(":rotating_light:"))
    head = f"mendhook alert digest: {firing} started, {len(lines) - firing} recovered"
    return "\n".join([head, *(f"• {line}" for line in lines)])


def _to_sentry(alert: Alert, state: AlertState) -> None:
    # One Sentry issue per condition and scope: its starts and recoveries land together.
    sentry_sdk.capture_message(
        _line(alert, state),
        level="error" if state == AlertState.FIRING else "info",
        fingerprint=["mendhook-alert", alert.condition, alert.scope, alert.subject],
        tags={"alert.condition": alert.condition, "alert.scope": alert.scope, "alert.state": state.value},
    )


def alerts_notify(*, started_ids: list[int], recovered_ids: list[int], to_sentry: bool = True) -> int:
    """Send the starts and recoveries one evaluation decided, as one message (a digest when
    several), and each to Sentry. Raises AlertDeliveryError when a retry may help; a permanent
    refusal is logged and the message dropped. Returns how many alerts the message carried."""
    started = list(Alert.objects.filter(id__in=started_ids, notified_start_at__isnull=True).order_by("id"))
    recovered = list(Alert.objects.filter(id__in=recovered_ids, notified_end_at__isnull=True).order_by("id"))
    if not started and not recovered:
        return 0
    if to_sentry:
        for alert in started:
            _to_sentry(alert, AlertState.FIRING)
        for alert in recovered:
            _to_sentry(alert, AlertState.RESOLVED)
    text = alerts_text(started, recovered)
    url = settings.MENDHOOK_ALERT_WEBHOOK_URL
    if url:
        try:
            alert_post(url=url, body={"text": text, "alert_ids": [a.id for a in (*started, *recovered)]})
        except AlertDeliveryError as exc:
            if not exc.permanent:
                raise
            logger.error("alert message refused by the receiver, not retried: %s", exc)
    else:
        logger.warning("ALERT %s", text)
    now = timezone.now()
    for alert in started:
        Alert.objects.mark_notified(alert_id=alert.id, state=AlertState.FIRING, now=now)
    for alert in recovered:
        Alert.objects.mark_notified(alert_id=alert.id, state=AlertState.RESOLVED, now=now)
    return len(started) + len(recovered)
