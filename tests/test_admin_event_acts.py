"""The acts on events in the admin, on one event or in bulk, and who may take them. The acts
themselves are the act flow's (ops_app.acts); here we check the admin runs them, confirms first,
and refuses what the user may not do."""

import uuid

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission

from ops_app import admin_act_flow
from ops_app.models import AuditEntry
from tests.support.admin import (
    CHANGELIST,
    OPS_STAFF,
    act_url,
    change_url,
    listed_ids,
    login,
    make_user,
    ops_staff_group_ensure,
)
from tests.support.events import event_with_ledger, many_events
from webhooks_app.errors import FailureKind
from webhooks_app.models import EventStatus, ItemStatus, WebhookEvent

pytestmark = pytest.mark.django_db


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


def test_a_note_the_database_cannot_store_is_refused_with_a_message_and_changes_nothing(ops, source):
    event = event_with_ledger(source)

    response = ops.post(act_url(event, "mark_resolved"), {"confirm": "yes", "note": "fixed \x00 it"}, follow=True)

    assert response.status_code == 200
    assert "cannot contain NUL characters" in response.content.decode()
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
    # Besides assignee rules, ops staff change only an endpoint's enabled flag (enable/disable
    # acts); sources, templates and endpoints' secrets stay with administrators.
    changes = {"webhooks_app.change_assigneerule", "webhooks_app.change_endpoint"}
    assert not [p for p in perms if p.startswith("webhooks_app.change_") and p not in changes]


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
