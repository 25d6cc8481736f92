"""The events admin: what ops staff see in the list and on an event's page."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from ops_app import admin_lists as events_admin
from tests.factories import AuditEntryFactory, ProcessingAttemptFactory
from tests.support.admin import CHANGELIST, act_url, change_url, listed_ids
from tests.support.events import event_with_ledger, make_event, many_events
from webhooks_app.errors import FailureKind
from webhooks_app.models import EventItem, EventStatus, ItemStatus, WebhookEvent

pytestmark = pytest.mark.django_db


# --- The list -------------------------------------------------------------------------------------


def test_it_lists_events_with_the_columns_ops_staff_read(ops, source):
    event = event_with_ledger(source, entity_id="matter-77")

    page = ops.get(CHANGELIST).content.decode()

    for header in ("Received", "Source", "Event type", "Entity id", "Status", "Action", "Attempts", "Last error code"):
        assert header in page
    assert "matter-77" in page and "Partial failure" in page and "ERR_ASSIGNEE_NO_CSC" in page
    assert "Tasks created / failed" in page and '9 / <strong class="mh-no">1</strong>' in page
    assert str(event.pk) in page


def test_the_error_code_filter_finds_codes_in_the_ledger_and_on_the_event(ops, source):
    in_ledger = event_with_ledger(source, failed=(2, 6), code="ERR_CLIO_API_FAILED", kind=FailureKind.TRANSIENT)
    # The last error names the first failed item only; the ledger still knows item 6's code.
    EventItem.objects.filter(event=in_ledger, number=6).update(error_code="ERR_ASSIGNEE_NO_PARALEGAL")
    on_event_only = make_event(source, status=EventStatus.FAILED, last_error_code="ERR_ASSIGNEE_NO_PARALEGAL")
    event_with_ledger(source, code="ERR_TIMEOUT")

    response = ops.get(CHANGELIST, {"error_code": "ERR_ASSIGNEE_NO_PARALEGAL"})

    assert listed_ids(response) == {str(in_ledger.pk), str(on_event_only.pk)}


def test_the_received_filter_keeps_the_last_seven_days(ops, source):
    recent = event_with_ledger(source, received_at=timezone.now() - timedelta(days=6, hours=23))
    event_with_ledger(source, received_at=timezone.now() - timedelta(days=7, hours=1))

    response = ops.get(CHANGELIST, {"received": "7d", "action__exact": "partial_failure"})

    assert listed_ids(response) == {str(recent.pk)}


def test_it_filters_by_status_source_and_event_type_and_searches_keys_entities_and_errors(ops, source):
    dead = event_with_ledger(source, status=EventStatus.DEAD_LETTER, entity_id="m-1", error="Clio API failed: 503")
    other = event_with_ledger(source, entity_id="m-2", idempotency_key="msg_abc")

    assert listed_ids(ops.get(CHANGELIST, {"status__exact": "dead_letter"})) == {str(dead.pk)}
    assert listed_ids(ops.get(CHANGELIST, {"source__id__exact": source.pk})) == {str(dead.pk), str(other.pk)}
    assert listed_ids(ops.get(CHANGELIST, {"event_type": "matter.stage_changed"})) == {str(dead.pk), str(other.pk)}
    assert listed_ids(ops.get(CHANGELIST, {"q": "msg_abc"})) == {str(other.pk)}
    assert listed_ids(ops.get(CHANGELIST, {"q": "m-1"})) == {str(dead.pk)}
    assert listed_ids(ops.get(CHANGELIST, {"q": "503"})) == {str(dead.pk)}


@pytest.fixture
def big_table(source) -> int:
    """More events than the paginator counts exactly, with fresh planner statistics."""
    count = events_admin.EstimatedCountPaginator.CAP + 7
    many_events(source, count)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE webhooks_app_webhookevent")
    return count


def test_the_list_never_counts_the_whole_table_exactly(ops, big_table):
    cap = events_admin.EstimatedCountPaginator.CAP

    with CaptureQueriesContext(connection) as queries:
        filtered = ops.get(CHANGELIST, {"status__exact": "received"})
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]

    assert f"more than {cap:,}" in filtered.content.decode()
    # Every count is bounded by a LIMIT: never a full COUNT(*) over the events table.
    assert counts and all("LIMIT" in sql.upper() for sql in counts)


def test_an_unfiltered_list_of_a_big_table_shows_the_planner_estimate(ops, big_table):
    page = ops.get(CHANGELIST).content.decode()

    # ANALYZE of a table this small reads every row: the estimate is the exact count.
    assert f"about {big_table:,}" in page


def test_the_planner_estimate_is_read_from_pg_class(source):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE webhooks_app_webhookevent")
    assert events_admin._table_row_estimate("webhooks_app_webhookevent") >= 0
    assert events_admin._table_row_estimate("no_such_table") == 0


# --- The event page -------------------------------------------------------------------------------


def test_the_event_page_explains_the_failure_in_one_screen(ops, source):
    event = event_with_ledger(source, failed=(6, 8), headers={"webhook-id": "msg_1"})
    EventItem.objects.filter(event=event, number=8).update(
        error="Clio API rejected the task: 422", error_code="ERR_DOWNSTREAM_REJECTED", failure_kind="permanent"
    )
    WebhookEvent.objects.filter(id=event.id).update(
        failure_details=[i.failure_detail() for i in event.items.filter(status=ItemStatus.FAILED)]
    )
    ProcessingAttemptFactory(
        event=event, number=1, task_id="t-1", worker="w:1", started_at=timezone.now(), outcome="partial_failure"
    )
    AuditEntryFactory(target=event, actor_label="ops.bob", note="tried once")

    page = ops.get(change_url(event)).content.decode()

    table = page.split('id="failure-details"')[1].split("</table>")[0]
    assert "#6" in table and "Send Initial Consultation Packet" in table and "ERR_ASSIGNEE_NO_CSC" in table
    assert "No CSC found for location: naples" in table
    assert re.search(r"#8.*?ERR_DOWNSTREAM_REJECTED.*?mh-no", table, re.S)  # permanent: not recoverable
    assert re.search(r"#6.*?mh-yes", table, re.S)
    assert "Item ledger" in page and "local-1" in page
    assert "Processing attempts" in page and "w:1" in page
    assert "History: what people did" in page and "tried once" in page and "ops.bob" in page
    assert "&quot;location&quot;: &quot;miami&quot;" in page  # the payload, pretty-printed
    assert "msg_1" in page  # the verified headers


def test_the_event_page_is_read_only(ops, source):
    event = event_with_ledger(source)

    page = ops.get(change_url(event)).content.decode()
    response = ops.post(change_url(event), {"entity_id": "changed", "payload": "{}"})

    assert 'name="_save"' not in page
    assert 'name="entity_id"' not in page
    assert response.status_code == 403
    event.refresh_from_db()
    assert event.entity_id != "changed"


def test_the_event_page_offers_the_acts_that_apply_with_what_they_will_do(ops, source):
    event = event_with_ledger(source)

    page = ops.get(change_url(event)).content.decode()

    retry = page.split('id="act-retry"')[1].split("</form>")[0]
    assert "Re-runs 1 item" in retry and "#6 Send Initial Consultation Packet" in retry
    assert "The 9 items that succeeded are kept" in retry
    resolve = page.split('id="act-resolve"')[1].split("</form>")[0]
    assert 'name="note"' in resolve and "manually_resolved" in resolve


def test_a_succeeded_event_offers_no_act(ops, source):
    event = event_with_ledger(source, failed=(), status=EventStatus.SUCCEEDED)

    page = ops.get(change_url(event)).content.decode()

    assert 'id="act-retry"' not in page and 'id="act-resolve"' not in page


def hints_of(page: str) -> str:
    return page.split('id="cause-hints"')[1].split("</div>")[0] if 'id="cause-hints"' in page else ""


def test_the_cause_hint_for_a_missing_assignee_points_at_the_assignee_rules(ops, source):
    event = event_with_ledger(source, code="ERR_ASSIGNEE_NO_CSC")

    hints = hints_of(ops.get(change_url(event)).content.decode())

    assert "ERR_ASSIGNEE_NO_CSC" in hints and "assignee rule" in hints
    assert reverse("admin:webhooks_app_assigneerule_changelist") in hints
    assert "downstream" not in hints


def test_the_cause_hint_for_a_failing_downstream_names_its_answer_not_the_assignee_rules(ops, source):
    event = event_with_ledger(
        source, code="ERR_CLIO_API_FAILED", error="Clio answered 503 Service Unavailable", kind=FailureKind.TRANSIENT
    )

    hints = hints_of(ops.get(change_url(event)).content.decode())

    assert "ERR_CLIO_API_FAILED" in hints and "503 Service Unavailable" in hints
    assert reverse("admin:webhooks_app_source_change", args=[source.pk]) in hints
    assert "assignee" not in hints


def test_an_event_that_succeeded_shows_no_cause_hint(ops, source):
    event = event_with_ledger(source, failed=(), status=EventStatus.SUCCEEDED)

    assert hints_of(ops.get(change_url(event)).content.decode()) == ""


def test_after_a_retry_the_header_agrees_with_the_ledger_while_the_worker_runs(
    ops, source, broker, django_capture_on_commit_callbacks
):
    event = event_with_ledger(source, failed=(6,))
    with django_capture_on_commit_callbacks(execute=True):
        redirect = ops.post(act_url(event, "retry_failed_items"), {"confirm": "yes"}, follow=True)
    landed = redirect.content.decode()
    assert "queued" in landed and "Queued" in landed
    assert "9 created · 1 failed" in landed  # nothing has run yet: the ledger still says so

    # The worker has claimed the event and item 6 has just succeeded; the attempt is not over,
    # so the event's own totals still say one failed.
    WebhookEvent.objects.filter(id=event.id).update(status=EventStatus.PROCESSING)
    EventItem.objects.filter(event=event, number=6).update(status=ItemStatus.SUCCEEDED, downstream_id="local-6")

    page = ops.get(change_url(event)).content.decode()

    assert WebhookEvent.objects.get(id=event.id).tasks_failed == 1
    assert "10 created · 0 failed" in page and 'id="in-flight"' in page
    assert 'id="failure-details"' not in page  # item 6 no longer failed: not listed as a failure
