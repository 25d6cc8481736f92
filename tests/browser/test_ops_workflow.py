"""An ops person's day in a real Chromium against the live server and a real worker: from the
dashboard to a resolved partial failure in three clicks, then fix the cause (the missing
assignee rule) and retry another event, which creates exactly the one missing task.

Also takes the screenshots in docs/screenshots/. Fails, never skips, when Chromium is missing:
`apt-get install -y chromium`.
"""

import os
import random
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone
from playwright.sync_api import Page, expect, sync_playwright

from localdev.demo import CONSULTATION_TASKS
from ops_app import selectors
from ops_app.errors import record_error
from ops_app.models import AuditEntry, ErrorRecord
from tests.factories import SourceFactory
from tests.support.admin import make_user, ops_staff_group_ensure
from tests.support.fake_http import Fault
from tests.support.signing import matter_payload
from tests.support.waiting import settle, wait_for
from webhooks_app.errors import ErrorCode, failure_kind
from webhooks_app.models import (
    AssigneeRule,
    ConnectorKind,
    EventAction,
    EventItem,
    EventStatus,
    ItemStatus,
    LocalTask,
    WebhookEvent,
)
from webhooks_app.tasks import process_event

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.timeout(300)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# The README's screenshots are refreshed only on request (UPDATE_SCREENSHOTS=1 make pytest), so
# an ordinary test run leaves the checkout clean; otherwise they go to a temporary folder.
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "mendhook-screenshots"
)
PASSWORD = "correct horse battery"  # what make_user sets
# --- A realistic month of data -----------------------------------------------------------------

LOCATION_GAPS = {
    # location -> (failing task numbers, code, message): the rules the demo firm lacks.
    "naples": ((6,), ErrorCode.ASSIGNEE_NO_CSC, "No CSC found for location: naples"),
    "fort-myers": ((6,), ErrorCode.ASSIGNEE_NO_CSC, "No CSC found for location: fort-myers"),
    "orlando": ((2, 8), ErrorCode.ASSIGNEE_NO_PARALEGAL, "No paralegal found for location: orlando"),
}


def historic_event(source, *, received_at, rng: random.Random) -> WebhookEvent:
    """One event of the past month, shaped like processing leaves it."""
    roll = rng.random()
    location = rng.choice(["miami", "tampa", "miami", "tampa", "naples", "orlando", "fort-myers"])
    payload = matter_payload(matter_id=rng.randint(20000, 29999), location=location)
    failed: tuple[int, ...] = ()
    code, error = "", ""
    status, action = EventStatus.SUCCEEDED, EventAction.CREATED_TASKS
    if location in LOCATION_GAPS and roll < 0.6:
        failed, code, error = LOCATION_GAPS[location]
        age = timezone.now() - received_at
        resolved = age > timedelta(days=6) and rng.random() < 0.6
        status = EventStatus.MANUALLY_RESOLVED if resolved else EventStatus.PARTIAL_FAILURE
        action = EventAction.MANUALLY_RESOLVED if resolved else EventAction.PARTIAL_FAILURE
    elif roll < 0.03:
        failed, code, error = tuple(range(1, 11)), ErrorCode.CLIO_API_FAILED, "Clio API failed: 503 Service Unavailable"
        status, action = EventStatus.DEAD_LETTER, EventAction.PARTIAL_FAILURE
        if timezone.now() - received_at > timedelta(days=4):  # someone dealt with older outages
            status, action = EventStatus.MANUALLY_RESOLVED, EventAction.MANUALLY_RESOLVED
    elif roll < 0.07:
        failed, code, error = (8,), ErrorCode.DOWNSTREAM_REJECTED, "Clio API rejected the task: 422 due_at in the past"
        status, action = EventStatus.PARTIAL_FAILURE, EventAction.PARTIAL_FAILURE
    event = WebhookEvent.objects.create(
        organization=source.organization,
        source=source,
        idempotency_key=f"msg_{uuid.UUID(int=rng.getrandbits(128)).hex}",
        event_type="matter.stage_changed",
        entity_id=str(payload["data"]["matter_id"]),
        payload=payload,
        headers={"webhook-id": payload["id"], "webhook-timestamp": str(int(received_at.timestamp()))},
        status=status,
        success=not failed or status == EventStatus.MANUALLY_RESOLVED,
        action=action,
        tasks_created=10 - len(failed),
        tasks_failed=len(failed),
        attempts=3 if status == EventStatus.DEAD_LETTER else 1,
        last_error_code=code,
        last_error=f"{len(failed)} item(s) failed; #{failed[0]}: {error}" if failed else "",
        received_at=received_at,
        last_attempt_at=received_at + timedelta(seconds=1),
        completed_at=received_at + timedelta(seconds=2),
    )
    items = [
        EventItem(
            event=event,
            number=number,
            title=title,
            assignee_role=role,
            idempotency_key=f"{event.id}:{number}",
            status=ItemStatus.FAILED if number in failed else ItemStatus.SUCCEEDED,
            downstream_id="" if number in failed else f"local-{rng.randint(1000, 99999)}",
            error=error if number in failed else "",
            error_code=code if number in failed else "",
            failure_kind=failure_kind(code) if number in failed else "",
            attempts=event.attempts if number in failed else 1,
        )
        for number, title, role, _due in CONSULTATION_TASKS
    ]
    EventItem.objects.bulk_create(items)
    if failed:
        event.failure_details = [i.failure_detail() for i in items if i.status == ItemStatus.FAILED]
        event.save(update_fields=["failure_details"])
    return event


def seed_month(source) -> None:
    rng = random.Random(20251003)
    now = timezone.now()
    for days_back in range(1, 30):
        for _ in range(rng.randint(4, 11)):
            at = now - timedelta(days=days_back, hours=rng.randint(0, 20), minutes=rng.randint(0, 59))
            historic_event(source, received_at=at, rng=rng)
    # Older troubles someone already looked at, and one still open.
    record_error(
        function="webhooks_app.tasks.send_dead_letter_alert",
        action="celery_task",
        message="HTTPStatusError: Server error '502 Bad Gateway' for url 'https://hooks.slack.com/services/T0/B0/x'",
        severity="error",
    )
    record_error(
        function="webhooks_app.tasks.process_event",
        action="create_item",
        error_code=ErrorCode.ASSIGNEE_NO_PARALEGAL,
        message="[ERR_ASSIGNEE_NO_PARALEGAL] No paralegal found for location: orlando "
        "(item #2 of event 9d3c1d2e-8f4b-4a41-9f0e-3b8a2c7d6e51)",
        severity="warning",
    )


# --- The browser ---------------------------------------------------------------------------------


@pytest.fixture
def browser_page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the test's ORM calls are still
    # plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
        page.set_default_timeout(20_000)
        yield page
        browser.close()
        # The ORM calls made while Playwright ran may have opened a connection of their own
        # (Django keeps connections per context); one left open blocks dropping the test DB.
        connections.close_all()


def shoot(page: Page, name: str, *, full_page: bool = True) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=full_page)


def test_an_ops_person_resolves_one_event_then_fixes_the_cause_and_retries_another(
    worker, live_server, organization, post_webhook, fake_clio, browser_page
):
    # `worker` before `live_server`: the session's database is then set up before the live
    # server and torn down after it, so no live connection blocks dropping the test database.
    organization.name, organization.slug = "Demo Law Firm", "demo-law"
    organization.save()
    clio = SourceFactory(organization=organization, slug="clio-demo")
    sandbox = SourceFactory(
        organization=organization,
        slug="clio-sandbox",
        connector=ConnectorKind.CLIO_HTTP,
        connector_base_url=fake_clio.url,
        backoff_base_seconds=0.5,
    )
    seed_month(clio)

    # Today's real traffic through the real worker.
    fake_clio.fail_next(*[Fault(503) for _ in range(30)])
    dead = post_webhook(sandbox, matter_payload(matter_id=31001, location="miami")).json()["id"]
    settle(dead, statuses={EventStatus.DEAD_LETTER}, timeout=45)
    naples = [
        post_webhook(clio, matter_payload(matter_id=m, location="naples")).json()["id"] for m in (31010, 31011, 31012)
    ]
    fine = [post_webhook(clio, matter_payload(matter_id=m, location=loc)).json()["id"] for m, loc in
            ((31020, "miami"), (31021, "tampa"), (31022, "miami"))]  # fmt: skip
    process_event.apply_async(args=("not-a-uuid",))  # a crashing task: a critical error record
    for event_id in naples + fine:
        settle(event_id, timeout=45)
    to_resolve, to_retry = WebhookEvent.objects.get(id=naples[0]), WebhookEvent.objects.get(id=naples[1])
    assert to_resolve.status == to_retry.status == EventStatus.RETRY_SCHEDULED
    assert to_retry.failure_details[0]["error_code"] == ErrorCode.ASSIGNEE_NO_CSC
    wait_for(lambda: ErrorRecord.objects.filter(severity="critical").exists(), message="the crashed task's record")

    user = make_user("ops.anna", group=ops_staff_group_ensure())  # staff, not superuser
    assert not user.is_superuser and not user.user_permissions.exists()

    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "ops.anna")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")

    # The dashboard: what needs a human now.
    expected = selectors.attention_counts(now=timezone.now())
    expect(page.locator("#card-partial_failures .mh-card-count")).to_have_text(str(expected.partial_failures))
    expect(page.locator("#card-dead_letters .mh-card-count")).to_have_text(str(expected.dead_letters))
    expect(page.locator("#card-retry_scheduled .mh-card-count")).to_have_text(str(expected.retry_scheduled))
    expect(page.locator("#card-critical_errors .mh-card-count")).to_have_text(str(expected.critical_errors))
    assert expected.partial_failures >= 3 and expected.dead_letters >= 1 and expected.critical_errors >= 1
    assert expected.retry_scheduled >= 3  # today's naples events wait for their automatic retry
    shoot(page, "dashboard.png")

    # Three clicks: the count, the event, "Mark resolved" with the note.
    clicks = 0
    page.click("#card-retry_scheduled")
    clicks += 1
    expect(page.locator("#result_list")).to_contain_text("31010")
    shoot(page, "events.png", full_page=False)
    page.click(f'#result_list a[href*="/{to_resolve.pk}/change/"]')
    clicks += 1
    expect(page.locator("#failure-details")).to_contain_text("ERR_ASSIGNEE_NO_CSC")
    expect(page.locator("#failure-details")).to_contain_text("Send Initial Consultation Packet")
    shoot(page, "event.png")
    page.fill("#resolve-note", "Created task 6 in Clio by hand; CSC for naples being hired")
    page.click("#act-resolve button[type=submit]")
    clicks += 1

    expect(page.locator(".messagelist")).to_contain_text("Mark manually resolved: done.")
    expect(page.locator("#event-summary")).to_contain_text("Manually resolved")
    assert clicks == 3
    to_resolve.refresh_from_db()
    assert (to_resolve.status, to_resolve.success, to_resolve.action) == (
        EventStatus.MANUALLY_RESOLVED,
        True,
        EventAction.MANUALLY_RESOLVED,
    )
    audit = AuditEntry.objects.for_target(to_resolve).get()
    assert (audit.act, audit.actor, audit.note) == (
        "mark_resolved",
        user,
        "Created task 6 in Clio by hand; CSC for naples being hired",
    )

    # Fix the cause: the missing CSC rule for naples, from the link on the next event's page.
    tasks_before = LocalTask.objects.filter(idempotency_key__startswith=f"{to_retry.pk}:").count()
    assert tasks_before == 9
    page.goto(f"{live_server.url}/admin/webhooks_app/webhookevent/{to_retry.pk}/change/")
    page.click("#cause-hints a:has-text('Assignee rules')")
    page.click("a.addlink")
    page.select_option("#id_organization", str(organization.pk))
    page.fill("#id_role", "csc")
    page.fill("#id_location", "naples")
    page.fill("#id_assignee", "csc.lee")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    assert AssigneeRule.objects.filter(organization=organization, role="csc", location="naples").exists()

    # Retry the other event's failed items: it turns succeeded with exactly the missing task.
    page.goto(f"{live_server.url}/admin/webhooks_app/webhookevent/{to_retry.pk}/change/")
    expect(page.locator("#act-retry")).to_contain_text("#6 Send Initial Consultation Packet")
    page.click("#act-retry button[type=submit]")
    expect(page.locator(".messagelist")).to_contain_text("Retry failed items now: queued.")
    settle(str(to_retry.pk), statuses={EventStatus.SUCCEEDED}, timeout=45)
    page.reload()
    expect(page.locator("#event-summary .mh-badge")).to_have_text("Succeeded")
    # The header says what the ledger says: every task created, none failed.
    expect(page.locator("#ledger-counts")).to_contain_text("10 created · 0 failed")

    to_retry.refresh_from_db()
    assert (to_retry.success, to_retry.tasks_created, to_retry.failure_details) == (True, 10, None)
    assert LocalTask.objects.filter(idempotency_key__startswith=f"{to_retry.pk}:").count() == tasks_before + 1
    created = LocalTask.objects.get(idempotency_key=f"{to_retry.pk}:6")
    assert created.assignee == "csc.lee"
    items = {i.number: i for i in to_retry.items.all()}
    assert items[6].attempts == 2 and all(items[n].attempts == 1 for n in items if n != 6)
    assert AuditEntry.objects.for_target(to_retry).get().act == "retry_failed_items"
