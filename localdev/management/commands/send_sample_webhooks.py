"""Send signed demo webhooks that show every outcome: success, partial failure, retry, dead letter;
start the demo leads' workflow runs and send call webhooks whose dispositions run actions."""

import json
import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from localdev import demo_calls
from localdev.demo import EVENT_TYPE, STAGE
from webhooks_app.models import EventStatus, Source, WebhookEvent
from workflows_app.models import Lead

LOCAL, SANDBOX = "clio-demo", "clio-sandbox"
SOURCES = (LOCAL, SANDBOX, *demo_calls.CALL_SOURCES)


@dataclass(frozen=True)
class Kind:
    label: str
    source: str
    location: str
    # The fake Clio picks its behaviour by the matter id's last digit (localdev.sandbox).
    last_digit: int


OK_MIAMI = Kind("local miami/tampa (all 10 tasks succeed)", LOCAL, "miami", 1)
OK_TAMPA = Kind(OK_MIAMI.label, LOCAL, "tampa", 1)
NAPLES = Kind("local naples (task 6 ERR_ASSIGNEE_NO_CSC, retried in 5 min)", LOCAL, "naples", 1)
FLAKY = Kind("sandbox ...3 (fails twice, then succeeds)", SANDBOX, "miami", 3)
FLAKY_TAMPA = Kind(FLAKY.label, SANDBOX, "tampa", 3)
DOWN = Kind("sandbox ...7 (always 503: dead letter)", SANDBOX, "tampa", 7)

# Repeated in this order: mostly successes, and the first few already show a partial failure.
CYCLE = [OK_MIAMI, OK_TAMPA, NAPLES, FLAKY, OK_MIAMI, OK_TAMPA, DOWN, OK_MIAMI, FLAKY_TAMPA, OK_TAMPA]

# States an event leaves without anyone's help; we wait while any sample is in one.
MOVING = (EventStatus.RECEIVED, EventStatus.QUEUED, EventStatus.PROCESSING)


@dataclass
class Sample:
    kind: Kind
    matter_id: int
    msg_id: str
    body: bytes
    event_id: str = ""


def sample_make(kind: Kind, matter_id: int) -> Sample:
    msg_id = f"msg_{uuid.uuid4().hex}"
    payload = {
        "id": f"evt_{msg_id.removeprefix('msg_')}",
        "type": EVENT_TYPE,
        "occurred_at": datetime.now(UTC).isoformat(),
        "data": {"matter_id": matter_id, "stage": STAGE, "previous_stage": "intake", "location": kind.location},
    }
    return Sample(kind=kind, matter_id=matter_id, msg_id=msg_id, body=json.dumps(payload).encode())


def samples_plan(count: int) -> list[Sample]:
    base = random.randint(10_000, 89_999) * 1000  # a fresh range each run, so matters look distinct
    kinds = [CYCLE[i % len(CYCLE)] for i in range(count)]
    return [sample_make(kind, (base + i) * 10 + kind.last_digit) for i, kind in enumerate(kinds)]


def signed_headers(secret: str, msg_id: str, body: bytes) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body.decode()),
    }


class Command(BaseCommand):
    help = (
        "Send signed matter.stage_changed webhooks to the demo Clio sources, start the demo leads' "
        "workflow runs and send Retell and Vapi call webhooks (run load_demo first)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=50, help="number of distinct events (default 50)")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="where the web process listens")
        parser.add_argument("--wait", type=float, default=0, help="seconds to wait for outcomes (default 0: don't)")

    def handle(self, *args: Any, **options: Any) -> None:
        count: int = options["count"]
        wait: float = options["wait"]
        url: str = options["url"].rstrip("/")
        if count < 1:
            raise CommandError("--count must be at least 1")
        if wait < 0:
            raise CommandError("--wait cannot be negative")
        sources = {s.slug: s for s in Source.objects.filter(slug__in=SOURCES)}
        missing = sorted(set(SOURCES) - sources.keys())
        if missing:
            raise CommandError(f"source(s) {', '.join(missing)} not found: run `manage.py load_demo` first")

        # httpx logs every request at INFO; the summary below says it better.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        samples = samples_plan(count)
        # A redelivery resends an event with the same webhook-id, as a provider does after a timeout.
        redeliveries = samples[: 1 if count < 25 else 2]
        statuses: Counter[int] = Counter()
        errors: list[str] = []
        with httpx.Client(base_url=url, timeout=10) as client:
            for sample in [*samples, *redeliveries]:
                source = sources[sample.kind.source]
                response = self._post(client, url, source, sample.msg_id, sample.body)
                statuses[response.status_code] += 1
                if response.status_code in (200, 202):
                    data = response.json()
                    if response.status_code == 202:
                        sample.event_id = data["id"]
                    elif not data.get("duplicate"):
                        errors.append(f"200 without duplicate=true: {response.text[:200]}")
                else:
                    errors.append(f"{response.status_code} from /webhooks/{source.slug}/: {response.text[:200]}")

        self._summary(url, samples, redeliveries, statuses, errors)
        started_at = timezone.now()
        organization_id = sources[LOCAL].organization_id
        self.stdout.write("workflow runs of 'New lead outreach':")
        for line in demo_calls.runs_start(organization_id=organization_id):
            self.stdout.write(line)
        call_ids = self._calls_send(url, sources, organization_id, errors)
        if wait:
            # One deadline for both: --wait bounds the whole command.
            deadline = time.monotonic() + wait
            self._workflows_wait(organization_id, started_at, call_ids, deadline)
            self._outcomes_wait(samples, wait, deadline)
        for line in demo_calls.outcomes_describe(organization_id=organization_id, since=started_at, call_ids=call_ids):
            self.stdout.write(line)
        if wait:
            # Not finished yet, e.g. waiting for a retry due after --wait ran out.
            far = timezone.now() + timedelta(days=3650)
            still = demo_calls.moving_runs(organization_id=organization_id, since=started_at, horizon=far)
            if still:
                self.stdout.write(f"  {still} run(s) still active after {wait:g} s")
        if errors:
            hint = ""
            if any(e.startswith(("401", "404")) for e in errors):
                hint = " (does the web process use the same database as this command?)"
            raise CommandError(f"{len(errors)} request(s) failed{hint}; first: {errors[0]}")

    def _post(self, client: httpx.Client, url: str, source: Source, msg_id: str, body: bytes) -> httpx.Response:
        headers = signed_headers(source.signing_secrets[0], msg_id, body)
        try:
            return client.post(f"/webhooks/{source.slug}/", content=body, headers=headers)
        except httpx.TransportError as exc:
            raise CommandError(f"cannot reach {url} ({exc!r}): is the platform running (make run)?") from None

    def _calls_send(self, url: str, sources: dict[str, Source], organization_id: int, errors: list[str]) -> list[str]:
        leads = {lead.name: lead for lead in Lead.objects.filter(organization_id=organization_id)}
        samples = demo_calls.call_samples_plan(leads)
        statuses: Counter[int] = Counter()
        with httpx.Client(base_url=url, timeout=10) as client:
            for sample in samples:
                source = sources[sample.script.source]
                for body in sample.bodies:
                    try:
                        response = client.post(
                            f"/webhooks/{source.slug}/", content=body, headers=demo_calls.headers_for(source, body)
                        )
                    except httpx.TransportError as exc:
                        raise CommandError(
                            f"cannot reach {url} ({exc!r}): is the platform running (make run)?"
                        ) from None
                    statuses[response.status_code] += 1
                    if response.status_code != 202:
                        errors.append(f"{response.status_code} from /webhooks/{source.slug}/: {response.text[:200]}")
        sent = sum(statuses.values())
        self.stdout.write(f"sent {sent} call webhooks for {len(samples)} calls; 202 accepted: {statuses[202]}")
        for sample in samples:
            self.stdout.write(f"  {sample.script.lead:<18} {sample.script.label}")
        return [sample.call_id for sample in samples]

    def _workflows_wait(self, organization_id: int, since: datetime, call_ids: list[str], deadline: float) -> None:
        # A step due after we stop waiting is as far as this run will see that run go.
        horizon = timezone.now() + timedelta(seconds=max(0.0, deadline - time.monotonic()))

        def moving() -> int:
            runs = demo_calls.moving_runs(organization_id=organization_id, since=since, horizon=horizon)
            return runs + demo_calls.moving_calls(call_ids)

        while moving() and time.monotonic() < deadline:
            time.sleep(1)

    def _summary(
        self, url: str, samples: list[Sample], redeliveries: list[Sample], statuses: Counter[int], errors: list[str]
    ) -> None:
        other = sum(n for code, n in statuses.items() if code not in (200, 202))
        self.stdout.write(f"sent {len(samples)} events and {len(redeliveries)} redelivery(ies) to {url}")
        self.stdout.write(f"  202 accepted: {statuses[202]}   200 duplicate: {statuses[200]}   errors: {other}")
        for label, n in Counter(s.kind.label for s in samples).items():
            self.stdout.write(f"  {n:>4} x {label}")
        for error in errors[:5]:
            self.stdout.write(f"  error: {error}")

    def _outcomes_wait(self, samples: list[Sample], wait: float, deadline: float) -> None:
        ids = [s.event_id for s in samples if s.event_id]
        retry_horizon = timezone.now() + timedelta(seconds=max(0.0, deadline - time.monotonic()))
        # A retry due after we stop waiting is as far as this run will see that event go.
        moving = Q(status__in=MOVING) | Q(status=EventStatus.RETRY_SCHEDULED, next_retry_at__lte=retry_horizon)
        pending = WebhookEvent.objects.filter(moving, id__in=ids).count()
        while pending and time.monotonic() < deadline:
            time.sleep(1)
            pending = WebhookEvent.objects.filter(moving, id__in=ids).count()
        status_of = dict(WebhookEvent.objects.filter(id__in=ids).values_list("id", "status"))
        by_kind: dict[str, Counter[str]] = {}
        for sample in samples:
            if sample.event_id:
                by_kind.setdefault(sample.kind.label, Counter())[status_of[uuid.UUID(sample.event_id)]] += 1
        totals = Counter(status_of.values())
        self.stdout.write("event status: " + ", ".join(f"{status} {n}" for status, n in sorted(totals.items())))
        for label, counter in by_kind.items():
            self.stdout.write(f"  {label}: " + ", ".join(f"{s} {n}" for s, n in sorted(counter.items())))
        if pending:
            self.stdout.write(f"  {pending} event(s) still in progress after {wait:g} s")
