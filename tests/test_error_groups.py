"""Error groups whose cause is gone resolve themselves: the system resolves a group once its event
has succeeded or been resolved, audits it like a person's act, and the group reopens if the
error happens again."""

import pytest

from config.publishing import publish
from ops_app.acts.error_groups import error_groups_resolve_settled
from ops_app.errors import record_error
from ops_app.models import AuditEntry, ErrorRecord
from tests.support.events import make_event
from tests.support.waiting import wait_for
from webhooks_app.models import EventStatus, WebhookEvent

TASK = "webhooks_app.tasks.process_event"


def a_group(event: WebhookEvent | None, message: str) -> ErrorRecord:
    record_error(
        function=TASK,
        message=message,
        error_code="ERR_ASSIGNEE_NO_CSC",
        event_id=event.id if event is not None else None,
    )
    return ErrorRecord.objects.get(message=message)


@pytest.mark.django_db
def test_it_resolves_a_group_once_its_event_has_succeeded_and_audits_it_as_the_system(source):
    event = make_event(source, status=EventStatus.PARTIAL_FAILURE)
    group = a_group(event, "No CSC found for location: naples")

    assert error_groups_resolve_settled() == 0  # the event still needs a person
    assert not ErrorRecord.objects.get(pk=group.pk).resolved

    WebhookEvent.objects.filter(id=event.id).update(status=EventStatus.SUCCEEDED)
    assert error_groups_resolve_settled() == 1

    group.refresh_from_db()
    assert group.resolved and group.resolved_by is None and "since succeeded" in group.resolution_note
    audit = AuditEntry.objects.for_target(group).get()
    assert (audit.act, audit.via, audit.actor_label, audit.status_before, audit.status_after) == (
        "resolve_error_group",
        "system",
        "system",
        "open",
        "resolved",
    )
    assert error_groups_resolve_settled() == 0  # a second run finds nothing left
    assert AuditEntry.objects.count() == 1


@pytest.mark.django_db
def test_it_leaves_groups_whose_event_still_fails_or_that_name_no_event(source):
    resolved_by_hand = a_group(make_event(source, status=EventStatus.MANUALLY_RESOLVED), "one")
    still_failing = a_group(make_event(source, status=EventStatus.DEAD_LETTER), "two")
    waiting = a_group(make_event(source, status=EventStatus.RETRY_SCHEDULED), "three")
    no_event = a_group(None, "four")

    assert error_groups_resolve_settled() == 1

    resolved = set(ErrorRecord.objects.filter(resolved=True).values_list("pk", flat=True))
    assert resolved == {resolved_by_hand.pk}
    assert {still_failing.pk, waiting.pk, no_event.pk}.isdisjoint(resolved)


@pytest.mark.django_db
def test_a_group_the_system_resolved_reopens_when_the_error_recurs(source):
    event = make_event(source, status=EventStatus.SUCCEEDED)
    group = a_group(event, "No CSC found for location: tampa")
    error_groups_resolve_settled()

    other = make_event(source, status=EventStatus.PARTIAL_FAILURE)
    a_group(other, "No CSC found for location: tampa")

    group.refresh_from_db()
    assert (group.resolved, group.occurrences, group.event_id) == (False, 2, other.id)
    acts = list(AuditEntry.objects.for_target(group).values_list("act", "via"))
    assert acts == [("recurred", "system"), ("resolve_error_group", "system")]


@pytest.mark.integration
def test_the_beat_job_resolves_settled_groups_on_the_real_worker(worker, source):
    group = a_group(make_event(source, status=EventStatus.SUCCEEDED), "No CSC found for location: orlando")

    # What beat does on its schedule: publish the job, which a real worker runs.
    publish("ops_app.tasks.resolve_settled_error_groups")

    wait_for(
        lambda: ErrorRecord.objects.filter(pk=group.pk, resolved=True).exists(),
        timeout=60,
        message="the worker to resolve the settled group",
    )
    assert AuditEntry.objects.for_target(group).get().via == "system"
