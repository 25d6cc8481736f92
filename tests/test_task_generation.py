"""Task generation on the local connector: assignees, and never a second copy of a task."""

import pytest

from tests.factories import AssigneeRuleFactory, LocalTaskFactory
from tests.support.events import make_event
from webhooks_app.errors import ErrorCode, ProcessingError
from webhooks_app.handlers.task_generation import AssigneeDirectory
from webhooks_app.models import EventStatus, LocalTask
from webhooks_app.services.processing import event_process

pytestmark = pytest.mark.django_db


def test_an_exact_location_rule_beats_the_any_location_rule(organization):
    AssigneeRuleFactory(organization=organization, role="attorney", location="naples", assignee="a.naples")
    directory = AssigneeDirectory(organization_id=organization.id, location="naples")
    assert directory.resolve("attorney") == "a.naples"
    assert AssigneeDirectory(organization_id=organization.id, location="tampa").resolve("attorney") == "attorney.jones"


@pytest.mark.parametrize(
    ("role", "code"),
    [("csc", ErrorCode.ASSIGNEE_NO_CSC), ("notary", ErrorCode.ASSIGNEE_NOT_FOUND)],
)
def test_a_missing_assignee_names_the_role_and_location(organization, role, code):
    with pytest.raises(ProcessingError) as caught:
        AssigneeDirectory(organization_id=organization.id, location="naples").resolve(role)
    assert caught.value.code == code
    assert "naples" in caught.value.message


def test_a_task_left_by_an_earlier_attempt_is_reused_not_duplicated(source):
    event = make_event(source)
    earlier = LocalTaskFactory(
        organization=source.organization, idempotency_key=f"{event.id}:3", entity_id="1001", title="t", assignee="x"
    )

    assert event_process(event_id=event.id, task_id="t", worker="w:1") == EventStatus.SUCCEEDED

    assert LocalTask.objects.count() == 10
    assert event.items.get(number=3).downstream_id == f"local-{earlier.pk}"


def test_a_retry_updates_only_the_failed_items_of_the_ledger(source):
    event = make_event(
        source,
        payload={
            "type": "matter.stage_changed",
            "data": {"matter_id": 7, "stage": "consultation", "location": "naples"},
        },
    )
    assert event_process(event_id=event.id, task_id="t1", worker="w:1") == EventStatus.RETRY_SCHEDULED
    before = {i.number: (i.downstream_id, i.updated_at) for i in event.items.all()}
    AssigneeRuleFactory(organization=source.organization, role="csc", location="naples", assignee="c")
    event.__class__.objects.filter(id=event.id).update(next_retry_at=event.received_at)

    assert event_process(event_id=event.id, task_id="t2", worker="w:1") == EventStatus.SUCCEEDED

    after = {i.number: (i.downstream_id, i.updated_at) for i in event.items.all()}
    assert {n for n in after if after[n] != before[n]} == {6}
    assert LocalTask.objects.count() == 10
