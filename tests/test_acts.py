"""The act flow: every door runs the same acts, and each run is audited once, in the same
transaction as the change it made; an act that does not apply changes and audits nothing."""

import pytest
from django.contrib.auth.models import Permission

from ops_app.acts import ACTS, ActRefused, act_run
from ops_app.acts.error_groups import REOPEN_ERROR_GROUP, RESOLVE_ERROR_GROUP
from ops_app.acts.events import MARK_RESOLVED, REQUEUE_DEAD_LETTERS, RETRY_FAILED_ITEMS, event_retry_act
from ops_app.models import AuditEntry, ErrorRecord
from tests.factories import ErrorRecordFactory, EventItemFactory, WebhookEventFactory
from webhooks_app.models import EventStatus, ItemStatus
from webhooks_app.services.operations import Actor

pytestmark = pytest.mark.django_db

API_KEY = Actor(label="api-key:mhk_1234", via="api")


def test_it_audits_who_what_through_which_door_why_and_the_status_it_moved(source):
    event = WebhookEventFactory(source=source, status=EventStatus.DEAD_LETTER)

    entry = act_run(act=MARK_RESOLVED, target=event, actor=API_KEY, note="  sent by hand  ")

    event.refresh_from_db()
    assert event.status == EventStatus.MANUALLY_RESOLVED
    assert AuditEntry.objects.for_target(event).get() == entry
    assert (entry.act, entry.actor_label, entry.via, entry.note, entry.actor) == (
        "mark_resolved",
        "api-key:mhk_1234",
        "api",
        "sent by hand",
        None,
    )
    assert (entry.status_before, entry.status_after) == ("dead_letter", "manually_resolved")


@pytest.mark.parametrize("status", [EventStatus.SUCCEEDED, EventStatus.PROCESSING, EventStatus.MANUALLY_RESOLVED])
def test_an_act_that_does_not_apply_changes_and_audits_nothing(source, status):
    event = WebhookEventFactory(source=source, status=status)

    with pytest.raises(ActRefused):
        act_run(act=RETRY_FAILED_ITEMS, target=event, actor=API_KEY)

    event.refresh_from_db()
    assert event.status == status
    assert not AuditEntry.objects.exists()


def test_an_act_that_needs_a_note_is_refused_without_one(source):
    event = WebhookEventFactory(source=source, status=EventStatus.FAILED)

    with pytest.raises(ActRefused, match="note"):
        act_run(act=MARK_RESOLVED, target=event, actor=API_KEY, note="   ")

    event.refresh_from_db()
    assert event.status == EventStatus.FAILED and not AuditEntry.objects.exists()


def test_the_plan_says_what_a_retry_will_run_and_keep_or_why_not(source):
    partial = WebhookEventFactory(source=source, status=EventStatus.PARTIAL_FAILURE)
    EventItemFactory(event=partial, number=1, status=ItemStatus.SUCCEEDED)
    failed = EventItemFactory(event=partial, number=2, status=ItemStatus.FAILED)
    done = WebhookEventFactory(source=source, status=EventStatus.SUCCEEDED)

    retry, skipped = RETRY_FAILED_ITEMS.plan_many([partial, done])

    assert (retry.applies, retry.open_items, retry.kept_items) == (True, (failed,), 1)
    assert (skipped.applies, skipped.reason) == (False, "succeeded: nothing to retry")
    assert not AuditEntry.objects.exists()  # planning changes nothing


def test_a_dead_letter_is_requeued_and_anything_else_retried(source):
    assert event_retry_act(WebhookEventFactory(source=source, status=EventStatus.DEAD_LETTER)) is REQUEUE_DEAD_LETTERS
    assert event_retry_act(WebhookEventFactory(source=source, status=EventStatus.FAILED)) is RETRY_FAILED_ITEMS


def test_error_groups_go_through_the_same_flow(django_user_model):
    anna = django_user_model.objects.create_user("anna")
    group = ErrorRecordFactory()

    act_run(act=RESOLVE_ERROR_GROUP, target=group, actor=Actor.from_user(anna), note="fixed")
    with pytest.raises(ActRefused, match="already resolved"):
        act_run(act=RESOLVE_ERROR_GROUP, target=group, actor=Actor.from_user(anna), note="again")
    act_run(act=REOPEN_ERROR_GROUP, target=group, actor=Actor.from_user(anna))

    assert not ErrorRecord.objects.get(pk=group.pk).resolved
    history = AuditEntry.objects.for_target(group).order_by("created_at", "id")
    assert list(history.values_list("act", "actor_id", "status_before", "status_after")) == [
        ("resolve_error_group", anna.pk, "open", "resolved"),
        ("reopen_error_group", anna.pk, "resolved", "open"),
    ]


def test_every_act_names_a_permission_that_exists_and_an_audited_act():
    for name, act in ACTS.items():
        app_label, codename = act.permission.split(".")
        assert Permission.objects.filter(content_type__app_label=app_label, codename=codename).exists(), name
        assert act.name == name
