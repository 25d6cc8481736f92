"""The error records admin: read-only groups that ops staff resolve and reopen, always audited."""

import pytest
from django.urls import reverse

from ops_app.errors import record_error
from ops_app.models import AuditEntry, ErrorRecord
from tests.support.admin import login, make_user

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/ops_app/errorrecord/"


@pytest.fixture
def viewer(db):
    return login(make_user("viewer.vic", perms=("ops_app.view_errorrecord",)))


def a_record(message="No CSC found for location: naples", severity="warning", **kw) -> ErrorRecord:
    record_error(function="webhooks_app.tasks.process_event", message=message, severity=severity, **kw)
    return ErrorRecord.objects.get(message=message)


def act_url(record, kind):
    return reverse("admin:ops_app_errorrecord_act", args=[record.pk, kind])


def change_url(record):
    return reverse("admin:ops_app_errorrecord_change", args=[record.pk])


def test_the_list_shows_groups_with_their_counts_and_filters_unresolved_critical(ops):
    warning = a_record(error_code="ERR_ASSIGNEE_NO_CSC")
    critical = a_record(message="TypeError: boom", severity="critical")
    record_error(function="webhooks_app.tasks.process_event", message="TypeError: boom", severity="critical")

    page = ops.get(CHANGELIST, {"resolved__exact": "0", "severity__exact": "critical"}).content.decode()

    assert "TypeError: boom" in page and f"/{critical.pk}/change/" in page
    assert f"/{warning.pk}/change/" not in page
    assert ErrorRecord.objects.get(pk=critical.pk).occurrences == 2


def test_the_record_page_shows_where_what_and_the_context(ops):
    record = a_record(
        error_code="ERR_ASSIGNEE_NO_CSC",
        event_id="8a0f3c5e-3c1e-4b7e-9a53-1f0e7a7d9b10",
        organization_id=7,
        lead_id="lead-9",
        stack="Traceback (most recent call last): ...",
        request_payload={"item": 6},
    )

    page = ops.get(change_url(record)).content.decode()

    assert "webhooks_app.tasks.process_event" in page and "ERR_ASSIGNEE_NO_CSC" in page
    assert reverse("admin:webhooks_app_webhookevent_change", args=[record.event_id]) in page
    assert "lead lead-9" in page and "Traceback (most recent call last)" in page
    assert "&quot;item&quot;: 6" in page
    assert 'id="act-resolve"' in page


def test_resolving_needs_a_note_and_records_who_when_and_why(ops):
    record = a_record()

    refused = ops.post(act_url(record, "resolve_error_group"), {"confirm": "yes", "note": ""})
    assert "A note is required" in refused.content.decode()
    assert not ErrorRecord.objects.get(pk=record.pk).resolved

    response = ops.post(
        act_url(record, "resolve_error_group"), {"confirm": "yes", "note": "added the CSC rule for naples"}
    )

    assert response.status_code == 302
    record.refresh_from_db()
    assert record.resolved and record.resolved_by.username == "ops.anna" and record.resolved_at is not None
    assert record.resolution_note == "added the CSC rule for naples"
    audit = AuditEntry.objects.for_target(record).get()
    assert (audit.act, audit.actor_label, audit.via, audit.note) == (
        "resolve_error_group",
        "ops.anna",
        "admin",
        "added the CSC rule for naples",
    )
    assert (audit.status_before, audit.status_after) == ("open", "resolved")
    page = ops.get(change_url(record)).content.decode()
    assert "History: resolved, reopened, recurred" in page and 'id="act-reopen"' in page


def test_reopening_is_audited_and_clears_the_resolution(ops):
    record = a_record()
    ops.post(act_url(record, "resolve_error_group"), {"confirm": "yes", "note": "fixed"})

    ops.post(act_url(record, "reopen_error_group"), {"confirm": "yes", "note": "not fixed after all"})

    record.refresh_from_db()
    assert (record.resolved, record.resolved_by, record.resolution_note) == (False, None, "")
    assert list(AuditEntry.objects.for_target(record).values_list("act", "note")) == [
        ("reopen_error_group", "not fixed after all"),
        ("resolve_error_group", "fixed"),
    ]


def test_bulk_resolve_confirms_then_resolves_only_open_groups(ops):
    open_one = a_record(message="first")
    already = a_record(message="second")
    ops.post(act_url(already, "resolve_error_group"), {"confirm": "yes", "note": "earlier"})
    ids = [str(open_one.pk), str(already.pk)]

    confirm = ops.post(CHANGELIST, {"action": "resolve_error_group", "_selected_action": ids})
    assert "<strong>1</strong> of 2 error groups will be" in confirm.content.decode()
    assert "Skipped: already resolved" in confirm.content.decode()

    ops.post(
        CHANGELIST, {"action": "resolve_error_group", "_selected_action": ids, "confirm": "yes", "note": "deployed"}
    )

    assert ErrorRecord.objects.get(pk=open_one.pk).resolution_note == "deployed"
    assert ErrorRecord.objects.get(pk=already.pk).resolution_note == "earlier"
    assert AuditEntry.objects.filter(note="deployed").count() == 1


def test_without_the_permission_there_is_no_button_and_posting_is_403(viewer):
    record = a_record()

    page = viewer.get(change_url(record)).content.decode()
    single = viewer.post(act_url(record, "resolve_error_group"), {"confirm": "yes", "note": "n"})
    bulk = viewer.post(
        CHANGELIST,
        {"action": "resolve_error_group", "_selected_action": [str(record.pk)], "confirm": "yes", "note": "n"},
    )

    assert 'id="act-resolve"' not in page
    assert (single.status_code, bulk.status_code) == (403, 403)
    assert not ErrorRecord.objects.get(pk=record.pk).resolved
    assert not AuditEntry.objects.exists()


def test_error_records_cannot_be_edited_or_deleted_from_the_admin(ops):
    record = a_record()

    assert ops.post(change_url(record), {"message": "changed"}).status_code == 403
    assert ops.post(reverse("admin:ops_app_errorrecord_delete", args=[record.pk]), {"post": "yes"}).status_code == 403
    assert ErrorRecord.objects.get(pk=record.pk).message == "No CSC found for location: naples"
