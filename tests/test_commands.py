"""The operator commands: create_source, load_demo and send_sample_webhooks."""

import io
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from standardwebhooks.webhooks import Webhook

from tests.support.worker import clean_redis
from webhooks_app.models import (
    AssigneeRule,
    ConnectorKind,
    Organization,
    SigningScheme,
    Source,
    TaskTemplate,
    WebhookEvent,
)
from workflows_app.models import Disposition, Lead, Workflow, WorkflowRun, WorkflowStep
from workflows_app.services.strategies import business_hours_of

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, **options: Any) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def counts() -> tuple[int, ...]:
    return tuple(m.objects.count() for m in (Organization, Source, TaskTemplate, AssigneeRule))


def outreach_counts() -> tuple[int, ...]:
    return tuple(m.objects.count() for m in (Lead, Workflow, WorkflowStep, Disposition))


# --- create_source ---------------------------------------------------------------------------


def test_it_creates_the_source_and_its_organization_and_prints_the_secret(db: None) -> None:
    out = run("create_source", "--org", "acme", "--slug", "acme-vapi", "--kind", "vapi")

    source = Source.objects.select_related("organization").get(slug="acme-vapi")
    assert (source.organization.slug, source.organization.name) == ("acme", "acme")
    assert source.kind == "vapi"
    assert source.signing_scheme == SigningScheme.STANDARD_WEBHOOKS
    assert source.connector == ConnectorKind.LOCAL
    secret = source.signing_secrets[0]
    assert secret.startswith("whsec_")
    Webhook(secret)  # a secret the Standard Webhooks library accepts
    assert secret in out
    assert "http://127.0.0.1:8000/webhooks/acme-vapi/" in out


def test_it_gives_hmac_sources_a_hex_secret_and_reuses_the_organization(db: None) -> None:
    Organization.objects.create(slug="acme", name="Acme Inc")

    out = run(
        "create_source", "--org", "acme", "--slug", "acme-db", "--kind", "generic", "--scheme", "hmac_sha256",
        "--connector", "clio_http", "--connector-url", "https://clio.example/api",
    )  # fmt: skip

    source = Source.objects.get(slug="acme-db")
    assert Organization.objects.filter(slug="acme").count() == 1
    assert source.organization.name == "Acme Inc"
    assert source.signing_scheme == SigningScheme.HMAC_SHA256
    assert (source.connector, source.connector_base_url) == (ConnectorKind.CLIO_HTTP, "https://clio.example/api")
    secret = source.signing_secrets[0]
    assert len(secret) == 64
    int(secret, 16)
    assert secret in out


def test_a_retell_source_takes_its_api_key_from_the_environment_and_never_prints_it(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETELL_API_KEY", "key_from_the_dashboard_0123")

    out = run("create_source", "--org", "acme", "--slug", "acme-retell", "--kind", "retell", "--scheme", "retell",
              "--secret-env", "RETELL_API_KEY")  # fmt: skip

    source = Source.objects.get(slug="acme-retell")
    assert (source.signing_scheme, source.signing_secrets) == (SigningScheme.RETELL, ["key_from_the_dashboard_0123"])
    assert "key_from_the_dashboard_0123" not in out and "$RETELL_API_KEY" in out


def test_a_retell_source_without_its_api_key_is_refused(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)

    with pytest.raises(CommandError, match="Retell API key"):
        run("create_source", "--org", "acme", "--slug", "r1", "--kind", "retell", "--scheme", "retell")
    with pytest.raises(CommandError, match="NO_SUCH_KEY: that environment variable is empty"):
        run("create_source", "--org", "acme", "--slug", "r1", "--kind", "retell", "--secret-env", "NO_SUCH_KEY")
    assert not Source.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "zapier"], "--kind 'zapier' is not one of"),
        (["--kind", "clio", "--slug", "bad slug!"], "--slug 'bad slug!' is not a slug"),
        (["--kind", "clio", "--org", "Acme Inc"], "--org 'Acme Inc' is not a slug"),
        (["--kind", "clio", "--scheme", "jwt"], "--scheme 'jwt' is not one of"),
        (["--kind", "clio", "--connector", "clio_http"], "needs --connector-url"),
        (["--kind", "clio", "--connector-url", "https://x.example"], "only applies to --connector clio_http"),
        (["--kind", "clio", "--slug", "taken"], "a source with slug 'taken' already exists"),
    ],
)
def test_it_rejects_bad_input_with_a_message_and_creates_nothing(db: None, args: list[str], message: str) -> None:
    other = Organization.objects.create(slug="other", name="Other")
    Source.objects.create(organization=other, slug="taken", signing_secrets=["whsec_x"])
    before = counts()
    options = {"--org": "new-org", "--slug": "new-source", **dict(zip(args[::2], args[1::2], strict=True))}

    with pytest.raises(CommandError, match=message):
        run("create_source", *[part for pair in options.items() for part in pair])

    assert counts() == before
    assert not Organization.objects.filter(slug="new-org").exists()


def test_it_answers_bad_input_on_the_command_line_without_a_traceback() -> None:
    argv = [sys.executable, "manage.py", "create_source", "--org", "acme", "--slug", "x", "--kind", "zapier"]

    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert done.returncode == 1, done.stderr
    assert "CommandError: --kind 'zapier' is not one of" in done.stderr
    assert "Traceback" not in done.stderr


# --- load_demo ---------------------------------------------------------------------------------


def test_it_loads_the_demo_once_and_keeps_its_secrets_when_run_again(db: None) -> None:
    first = run("load_demo")
    secrets_first = {s.slug: s.signing_secrets for s in Source.objects.all()}
    counts_first = counts()

    second = run("load_demo", "--sandbox-url", "http://127.0.0.1:9999/sandbox/clio/")

    assert counts() == counts_first == (1, 4, 10, 4)
    assert outreach_counts() == (6, 2, 7, 7)
    assert {s.slug: s.signing_secrets for s in Source.objects.all()} == secrets_first
    for slug, secrets in secrets_first.items():
        # The Retell source's secret is the Retell API key: never printed.
        printed = slug != "retell-demo"
        assert (secrets[0] in first, secrets[0] in second) == (printed, printed)
    assert "secret: the Retell API key (RETELL_API_KEY)" in first
    sandbox = Source.objects.get(slug="clio-sandbox")
    assert sandbox.connector_base_url == "http://127.0.0.1:9999/sandbox/clio"


def test_the_demo_retell_source_verifies_with_the_retell_api_key_the_call_steps_send(db: None, settings: Any) -> None:
    settings.RETELL_API_KEY = "key_demo_0123456789"

    run("load_demo")

    retell = Source.objects.get(slug="retell-demo")
    assert (retell.kind, retell.signing_scheme) == ("retell", SigningScheme.RETELL)
    assert retell.signing_secrets == ["key_demo_0123456789"]
    assert Source.objects.get(slug="vapi-demo").signing_scheme == SigningScheme.VAPI_SECRET


def test_the_demo_organization_retries_after_a_minute_at_any_hour(db: None) -> None:
    run("load_demo")

    organization = Organization.objects.get(slug="demo-law")
    sunday_night = datetime(2026, 1, 4, 23, 30, tzinfo=UTC)
    assert business_hours_of(organization).is_open(sunday_night)
    assert set(WorkflowStep.objects.values_list("retry_delay_minutes", flat=True)) == {1}
    # Only the demo's: a new organization keeps the seed's hours.
    assert not business_hours_of(Organization.objects.create(slug="other", name="Other")).is_open(sunday_night)


def test_it_rejects_a_sandbox_url_that_is_not_http(db: None) -> None:
    with pytest.raises(CommandError, match="not an http"):
        run("load_demo", "--sandbox-url", "ftp://example.com")
    assert counts() == (0, 0, 0, 0)


# --- send_sample_webhooks ----------------------------------------------------------------------


@pytest.fixture
def demo_sources(transactional_db: None) -> Iterator[None]:
    run("load_demo")
    yield
    # The intake published processing messages to the test broker; nobody consumes them here.
    clean_redis()


def test_it_sends_the_demo_mix_and_the_redelivery_answers_200_duplicate(live_server: Any, demo_sources: None) -> None:
    out = run("send_sample_webhooks", "--count", "20", "--url", live_server.url)

    events = list(WebhookEvent.objects.select_related("source").filter(source__kind="clio"))
    assert len(events) == 20  # the redelivery made no second row
    mix = Counter(
        (e.source.slug, e.payload["data"]["location"] if e.source.slug == "clio-demo" else e.entity_id[-1])
        for e in events
    )
    assert mix == {
        ("clio-demo", "miami"): 6,
        ("clio-demo", "tampa"): 6,
        ("clio-demo", "naples"): 2,
        ("clio-sandbox", "3"): 4,
        ("clio-sandbox", "7"): 2,
    }
    assert {e.event_type for e in events} == {"matter.stage_changed"}
    assert {e.payload["data"]["stage"] for e in events} == {"consultation"}
    assert "202 accepted: 20" in out
    assert "200 duplicate: 1" in out
    assert "errors: 0" in out


def test_it_starts_the_demo_runs_and_sends_signed_call_webhooks(live_server: Any, demo_sources: None) -> None:
    out = run("send_sample_webhooks", "--count", "1", "--url", live_server.url)

    runs = WorkflowRun.objects.select_related("lead", "workflow")
    assert sorted(r.lead.name for r in runs) == ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Katherine Johnson"]
    assert {r.workflow.name for r in runs} == {"New lead outreach"}
    # Refused by run_start itself, with its reasons.
    assert "Edsger Dijkstra    refused: lead 'Edsger Dijkstra' has no email address" in out
    assert "Barbara Liskov     refused: lead 'Barbara Liskov': phone '555-0199' is not a phone number" in out
    calls = Counter(
        (e.source.slug, e.event_type)
        for e in WebhookEvent.objects.select_related("source").exclude(source__kind="clio")
    )
    # Accepted: each signature verified against the source's own secret.
    assert calls == {
        ("retell-demo", "call_ended"): 2,
        ("retell-demo", "call_analyzed"): 2,
        ("vapi-demo", "end-of-call-report"): 2,
    }
    assert "sent 6 call webhooks for 4 calls; 202 accepted: 6" in out
    assert "workflow runs (status/step status): active/pending 4" in out


def test_it_tells_to_run_load_demo_when_the_demo_sources_are_missing(db: None) -> None:
    with pytest.raises(CommandError, match=r"run `manage\.py load_demo` first"):
        run("send_sample_webhooks", "--count", "1")


def test_it_says_so_when_the_web_process_is_not_reachable(db: None) -> None:
    run("load_demo")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there

    with pytest.raises(CommandError, match=r"cannot reach http://127\.0\.0\.1:\d+ .*is the platform running"):
        run("send_sample_webhooks", "--count", "1", "--url", f"http://127.0.0.1:{port}")
    assert WebhookEvent.objects.count() == 0
