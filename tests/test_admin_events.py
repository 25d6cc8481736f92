"""The events admin: what ops staff see, the acts they take on one event or in bulk, and who
may take them. The acts themselves are the audited operations; here we check the admin calls
them, confirms first, and refuses what the user may not do."""

import importlib
import re
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from ops_app import admin_act_flow
from ops_app import admin_lists as events_admin
from ops_app.models import AuditEntry
from tests.factories import AuditEntryFactory
from tests.test_beat_jobs import make_event
from webhooks_app.errors import FailureKind
from webhooks_app.models import (
    EventAction,
    EventItem,
    EventStatus,
    ItemStatus,
    WebhookEvent,
)

pytestmark = pytest.mark.django_db

OPS_STAFF = "Ops staff"
CHANGELIST = "/admin/webhooks_app/webhookevent/"


# --- Helpers shared by the admin, dashboard and browser tests -----------------------------------


def ops_staff_group_ensure() -> Group:
    """The group the data migrations create. A transactional test's flush empties auth tables,
    so tests that need it (re)apply the migrations' own grants with the live app registry."""
    group = Group.objects.filter(name=OPS_STAFF).first()
    if group is not None and group.permissions.exists():
        return group
    created = importlib.import_module("ops_app.migrations.0002_ops_staff_group")
    audited = importlib.import_module("ops_app.migrations.0004_audit_entry")
    # What the group holds after every migration that changed it.
    permissions = {
        label: [c for c in codenames if c not in audited.RETIRED.get(label, [])]
        for label, codenames in created.PERMISSIONS.items()
    }
    for label, codenames in audited.GRANTED.items():
        permissions[label] = [*permissions.get(label, []), *codenames]
    created.ops_staff_group_grant(django_apps, SimpleNamespace(connection=connection), permissions)
    return Group.objects.get(name=OPS_STAFF)


def make_user(username: str, *, group: Group | None = None, perms: tuple[str, ...] = ()) -> User:
    user = User.objects.create_user(username=username, password="correct horse battery", is_staff=True)
    if group is not None:
        user.groups.add(group)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def event_with_ledger(
    source,
    *,
    failed=(6,),
    items=10,
    status=EventStatus.PARTIAL_FAILURE,
    code="ERR_ASSIGNEE_NO_CSC",
    error="No CSC found for location: naples",
    kind=FailureKind.RECOVERABLE,
    **fields,
) -> WebhookEvent:
    """An event as processing leaves it: a ledger of items, the failed ones in failure_details."""
    event = make_event(source, status=status, **fields)
    rows = []
    for number in range(1, items + 1):
        failing = number in failed
        rows.append(
            EventItem(
                event=event,
                number=number,
                title=f"Task {number}" if number != 6 else "Send Initial Consultation Packet",
                idempotency_key=f"{event.id}:{number}",
                status=ItemStatus.FAILED if failing else ItemStatus.SUCCEEDED,
                downstream_id="" if failing else f"local-{number}",
                error=error if failing else "",
                error_code=code if failing else "",
                failure_kind=kind if failing else "",
                attempts=1,
            )
        )
    EventItem.objects.bulk_create(rows)
    failures = [row.failure_detail() for row in rows if row.status == ItemStatus.FAILED]
    WebhookEvent.objects.filter(id=event.id).update(
        success=not failures,
        action=EventAction.PARTIAL_FAILURE if failures else EventAction.CREATED_TASKS,
        tasks_created=items - len(failures),
        tasks_failed=len(failures),
        failure_details=failures or None,
        last_error_code=code if failures else "",
        last_error=f"{len(failures)} item(s) failed; #{failed[0]}: {error}" if failures else "",
        attempts=1,
    )
    event.refresh_from_db()
    return event


@pytest.fixture
def ops_group(db) -> Group:
    return ops_staff_group_ensure()


@pytest.fixture
def ops(ops_group) -> Client:
    """A member of the Ops staff group, not a superuser."""
    return login(make_user("ops.anna", group=ops_group))


@pytest.fixture
def viewer(db) -> Client:
    """Staff who may look at events but not act on them."""
    return login(make_user("viewer.vic", perms=("webhooks_app.view_webhookevent", "webhooks_app.view_eventitem")))


def act_url(event: WebhookEvent, act: str) -> str:
    return reverse("admin:webhooks_app_webhookevent_act", args=[event.pk, act])


def change_url(event: WebhookEvent) -> str:
    return reverse("admin:webhooks_app_webhookevent_change", args=[event.pk])


def listed_ids(response) -> set[str]:
    return set(re.findall(r'name="_selected_action" value="([0-9a-f-]{36})"', response.content.decode()))


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


def many_events(source, count: int) -> list[WebhookEvent]:
    """`count` received events in one INSERT: a table big enough to pass the admin's limits."""
    return WebhookEvent.objects.bulk_create(
        WebhookEvent(
            organization=source.organization,
            source=source,
            idempotency_key=f"bulk-{n}",
            event_type="matter.stage_changed",
            payload={},
        )
        for n in range(count)
    )


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
    event.attempt_log.create(
        number=1, task_id="t-1", worker="w:1", started_at=timezone.now(), outcome="partial_failure"
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


# --- Acts on one event ----------------------------------------------------------------------------


def test_mark_resolved_from_the_event_page_sets_the_seed_contract_and_audits(ops, source):
    event = event_with_ledger(source, status=EventStatus.RETRY_SCHEDULED)

    response = ops.post(act_url(event, "mark_resolved"), {"confirm": "yes", "note": "created task 6 in Clio by hand"})

    assert response.status_code == 302 and response["Location"] == change_url(event)
    event.refresh_from_db()
    assert (event.status, event.success, event.action) == (EventStatus.MANUALLY_RESOLVED, True, "manually_resolved")
    action = AuditEntry.objects.for_target(event).get()
    assert (action.act, action.actor.username, action.actor_label, action.note, action.via) == (
        "mark_resolved",
        "ops.anna",
        "ops.anna",
        "created task 6 in Clio by hand",
        "admin",
    )
    page = ops.get(change_url(event)).content.decode()
    assert "Resolved by <strong>ops.anna</strong>" in page and "created task 6 in Clio by hand" in page


def test_mark_resolved_without_a_note_shows_the_confirmation_again_and_changes_nothing(ops, source):
    event = event_with_ledger(source)

    response = ops.post(act_url(event, "mark_resolved"), {"confirm": "yes", "note": "  "})

    assert response.status_code == 200
    page = response.content.decode()
    assert "A note is required" in page and "will <strong>not</strong> be retried" in page
    event.refresh_from_db()
    assert event.status == EventStatus.PARTIAL_FAILURE
    assert not AuditEntry.objects.exists()


def test_the_act_page_confirms_which_items_a_retry_will_run(ops, source):
    event = event_with_ledger(source, failed=(6, 8))

    page = ops.get(act_url(event, "retry_failed_items")).content.decode()

    assert "<strong>2</strong> items will be retried" in page
    assert "#6 Send Initial Consultation Packet" in page and "#8 Task 8" in page
    assert "8 items that succeeded are kept" in page
    assert not AuditEntry.objects.exists()  # looking changes nothing


def test_retry_from_the_event_page_queues_only_the_failed_items(
    ops, source, broker, django_capture_on_commit_callbacks
):
    event = event_with_ledger(source)

    with django_capture_on_commit_callbacks(execute=True):
        response = ops.post(act_url(event, "retry_failed_items"), {"confirm": "yes"})

    assert response.status_code == 302
    event.refresh_from_db()
    assert event.status == EventStatus.QUEUED
    assert broker() == 1
    action = AuditEntry.objects.for_target(event).get()
    assert (action.act, action.actor_label, action.status_before) == (
        "retry_failed_items",
        "ops.anna",
        "partial_failure",
    )
    # Succeeded items are left alone; the worker re-runs the failed one only.
    assert event.items.filter(status=ItemStatus.SUCCEEDED).count() == 9


def test_an_act_that_no_longer_applies_says_why(ops, source):
    event = event_with_ledger(source, failed=(), status=EventStatus.SUCCEEDED)

    response = ops.post(act_url(event, "retry_failed_items"), {"confirm": "yes"}, follow=True)

    assert "nothing to retry" in response.content.decode()
    assert not AuditEntry.objects.exists()


# --- Bulk acts from the list ----------------------------------------------------------------------


def test_bulk_retry_confirms_which_events_and_items_then_retries_only_those_that_apply(ops, source, broker):
    first = event_with_ledger(source)
    second = event_with_ledger(source, failed=(2, 3), code="ERR_TIMEOUT", kind=FailureKind.TRANSIENT)
    done = event_with_ledger(source, failed=(), status=EventStatus.SUCCEEDED)
    selected = [str(e.pk) for e in (first, second, done)]

    confirm = ops.post(CHANGELIST, {"action": "retry_failed_items", "_selected_action": selected})

    page = confirm.content.decode()
    assert confirm.status_code == 200
    assert "<strong>2</strong> of 3 events will be queued again" in page
    assert "<strong>3</strong> items will be retried" in page
    assert "#2 Task 2" in page and "#3 Task 3" in page and "#6 Send Initial Consultation Packet" in page
    assert "Skipped: succeeded: nothing to retry" in page
    assert not AuditEntry.objects.exists()
    # The confirmation posts back only the events it will act on.
    assert listed_ids(confirm) == {str(first.pk), str(second.pk)}

    response = ops.post(
        CHANGELIST,
        {"action": "retry_failed_items", "_selected_action": sorted(listed_ids(confirm)), "confirm": "yes"},
    )

    assert response.status_code == 302
    assert set(AuditEntry.objects.values_list("target_id", "act")) == {
        (str(first.pk), "retry_failed_items"),
        (str(second.pk), "retry_failed_items"),
    }
    assert WebhookEvent.objects.get(pk=done.pk).status == EventStatus.SUCCEEDED


def test_bulk_resolve_requires_a_note_and_records_it_on_each_event(ops, source):
    events = [event_with_ledger(source) for _ in range(3)]
    ids = [str(e.pk) for e in events]

    no_note = ops.post(CHANGELIST, {"action": "mark_resolved", "_selected_action": ids, "confirm": "yes", "note": ""})
    assert "A note is required" in no_note.content.decode()
    assert not AuditEntry.objects.exists()

    ops.post(CHANGELIST, {"action": "mark_resolved", "_selected_action": ids, "confirm": "yes", "note": "CSC added"})

    assert WebhookEvent.objects.filter(status=EventStatus.MANUALLY_RESOLVED, success=True).count() == 3
    assert sorted(AuditEntry.objects.values_list("target_id", "note")) == sorted(
        (str(e.pk), "CSC added") for e in events
    )


def test_requeue_dead_letters_applies_to_dead_letters_only(ops, source, broker):
    dead = event_with_ledger(source, status=EventStatus.DEAD_LETTER, code="ERR_CLIO_API_FAILED")
    partial = event_with_ledger(source)

    ops.post(
        CHANGELIST,
        {"action": "requeue_dead_letters", "_selected_action": [str(dead.pk), str(partial.pk)], "confirm": "yes"},
    )

    assert list(AuditEntry.objects.values_list("target_id", "act")) == [(str(dead.pk), "requeue_dead_letters")]
    assert WebhookEvent.objects.get(pk=partial.pk).status == EventStatus.PARTIAL_FAILURE


def test_a_bulk_act_on_too_many_events_asks_to_narrow_the_filter(ops, source):
    ids = [str(e.pk) for e in many_events(source, admin_act_flow.MAX_BULK_OBJECTS + 1)]

    response = ops.post(CHANGELIST, {"action": "mark_resolved", "_selected_action": ids}, follow=True)

    assert "narrow the filter" in response.content.decode()
    assert not AuditEntry.objects.exists()


# --- Permissions ----------------------------------------------------------------------------------


def test_staff_without_the_act_permissions_see_no_buttons_and_no_bulk_acts(viewer, source):
    event = event_with_ledger(source)

    page = viewer.get(change_url(event)).content.decode()
    listing = viewer.get(CHANGELIST).content.decode()

    assert viewer.get(change_url(event)).status_code == 200
    assert 'id="act-retry"' not in page and 'id="act-resolve"' not in page
    assert "retry_failed_items" not in listing and "mark_resolved" not in listing


@pytest.mark.parametrize("act", ["retry_failed_items", "mark_resolved", "requeue_dead_letters"])
def test_staff_without_the_permission_get_403_when_posting_an_act(viewer, source, act):
    event = event_with_ledger(source, status=EventStatus.DEAD_LETTER)

    on_page = viewer.post(act_url(event, act), {"confirm": "yes", "note": "n"})
    bulk = viewer.post(CHANGELIST, {"action": act, "_selected_action": [str(event.pk)], "confirm": "yes", "note": "n"})
    confirmation = viewer.get(act_url(event, act))

    assert (on_page.status_code, bulk.status_code, confirmation.status_code) == (403, 403, 403)
    event.refresh_from_db()
    assert event.status == EventStatus.DEAD_LETTER
    assert not AuditEntry.objects.exists()


def test_retry_and_resolve_are_separate_permissions(source):
    user = make_user("retry.only", perms=("webhooks_app.view_webhookevent", "webhooks_app.retry_event"))
    client = login(user)
    event = event_with_ledger(source)

    page = client.get(change_url(event)).content.decode()

    assert 'id="act-retry"' in page and 'id="act-resolve"' not in page
    assert client.post(act_url(event, "mark_resolved"), {"confirm": "yes", "note": "n"}).status_code == 403


def test_the_ops_staff_group_may_view_retry_resolve_and_fix_assignee_rules_but_delete_nothing(ops_group):
    perms = {f"{p.content_type.app_label}.{p.codename}" for p in ops_group.permissions.select_related("content_type")}

    assert {
        "webhooks_app.view_webhookevent",
        "webhooks_app.view_eventitem",
        "webhooks_app.view_processingattempt",
        "ops_app.view_auditentry",
        "webhooks_app.view_source",
        "webhooks_app.view_tasktemplate",
        "webhooks_app.view_assigneerule",
        "webhooks_app.change_assigneerule",
        "webhooks_app.add_assigneerule",
        "webhooks_app.view_localtask",
        "webhooks_app.retry_event",
        "webhooks_app.resolve_event",
        "ops_app.view_errorrecord",
        "ops_app.resolve_errorrecord",
    } <= perms
    assert not [p for p in perms if ".delete_" in p]
    assert not [p for p in perms if p.startswith("webhooks_app.change_") and p != "webhooks_app.change_assigneerule"]


def test_an_ops_user_can_add_the_missing_assignee_rule(ops, organization):
    response = ops.post(
        "/admin/webhooks_app/assigneerule/add/",
        {"organization": organization.pk, "role": "csc", "location": "naples", "assignee": "csc.lee"},
    )

    assert response.status_code == 302
    assert organization.assignee_rules.filter(role="csc", location="naples", assignee="csc.lee").exists()


def test_the_group_migration_creates_permissions_that_do_not_exist_yet(db):
    Permission.objects.filter(codename__in=["retry_event", "resolve_errorrecord"]).delete()
    Group.objects.filter(name=OPS_STAFF).delete()

    group = ops_staff_group_ensure()

    assert group.permissions.filter(codename="retry_event", content_type__app_label="webhooks_app").exists()
    assert group.permissions.filter(codename="resolve_errorrecord", content_type__app_label="ops_app").exists()
    assert group.permissions.filter(codename="view_auditentry", content_type__app_label="ops_app").exists()
    assert not group.permissions.filter(codename__in=["view_operatoraction", "view_errorrecordaction"]).exists()
    # Applying it with the live registry leaves the app configs as they were.
    assert django_apps.get_app_config("webhooks_app").models_module is not None


def test_an_unknown_act_is_404(ops, source):
    event = event_with_ledger(source)
    assert ops.post(act_url(event, "delete_everything"), {"confirm": "yes"}).status_code == 404
    assert ops.get(act_url(WebhookEvent(id=uuid.uuid4()), "mark_resolved")).status_code == 404


def test_the_audit_list_shows_who_did_what_to_which_event(ops, source):
    event = event_with_ledger(source)
    ops.post(act_url(event, "mark_resolved"), {"confirm": "yes", "note": "created task 6 by hand"})

    page = ops.get("/admin/ops_app/auditentry/").content.decode()

    assert "ops.anna" in page and "created task 6 by hand" in page and change_url(event) in page
