"""Task generation on the local connector: assignees, and never a second copy of a task."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import AssigneeRuleFactory, LocalTaskFactory
from tests.support.events import make_event
from tests.support.signing import matter_payload
from webhooks_app.errors import ErrorCode, ProcessingError
from webhooks_app.handlers.task_config import task_config
from webhooks_app.handlers.task_generation import AssigneeDirectory
from webhooks_app.models import AssigneeRule, EventStatus, LocalTask, TaskTemplate
from webhooks_app.services.processing import event_process

pytestmark = pytest.mark.django_db


def _directory(organization, location):
    organization.refresh_from_db()  # its configuration version, as the worker reads it
    return AssigneeDirectory(config=task_config(organization), location=location)


def test_an_exact_location_rule_beats_the_any_location_rule(organization):
    AssigneeRuleFactory(organization=organization, role="attorney", location="naples", assignee="a.naples")
    directory = _directory(organization, "naples")
    assert directory.resolve("attorney") == "a.naples"
    assert _directory(organization, "tampa").resolve("attorney") == "attorney.jones"


@pytest.mark.parametrize(
    ("role", "code"),
    [("csc", ErrorCode.ASSIGNEE_NO_CSC), ("notary", ErrorCode.ASSIGNEE_NOT_FOUND)],
)
def test_a_missing_assignee_names_the_role_and_location(organization, role, code):
    with pytest.raises(ProcessingError) as caught:
        _directory(organization, "naples").resolve(role)
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


def test_a_changed_assignee_rule_applies_to_the_next_event_of_the_organization(source):
    first = make_event(source, payload=matter_payload(location="miami"))
    assert event_process(event_id=first.id, task_id="t1", worker="w:1") == EventStatus.SUCCEEDED  # cached now

    rule = AssigneeRule.objects.get(organization=source.organization, role="attorney", location="*")
    rule.assignee = "attorney.new"
    rule.save()
    second = make_event(source, payload=matter_payload(location="miami"))
    event_process(event_id=second.id, task_id="t2", worker="w:1")

    tasks = LocalTask.objects.filter(idempotency_key__startswith=str(second.id))
    assignees = set(tasks.values_list("assignee", flat=True))
    assert "attorney.new" in assignees
    assert "attorney.jones" not in assignees


def test_a_deleted_template_is_not_expanded_for_the_next_event(source):
    first = make_event(source)
    event_process(event_id=first.id, task_id="t1", worker="w:1")
    assert first.items.count() == 10

    TaskTemplate.objects.filter(organization=source.organization, stage="consultation", task_number=10).delete()
    second = make_event(source)
    event_process(event_id=second.id, task_id="t2", worker="w:1")

    assert sorted(second.items.values_list("number", flat=True)) == list(range(1, 10))


def test_the_second_event_of_an_organization_reads_no_templates_or_rules(source):
    event_process(event_id=make_event(source).id, task_id="t1", worker="w:1")
    second = make_event(source)

    with CaptureQueriesContext(connection) as queries:
        assert event_process(event_id=second.id, task_id="t2", worker="w:1") == EventStatus.SUCCEEDED

    read = [q["sql"] for q in queries.captured_queries if "tasktemplate" in q["sql"] or "assigneerule" in q["sql"]]
    assert read == []
    # Tasks, ledger and outcome commit together: two transactions, the claim's and the outcome's
    # (savepoints here, inside the test's transaction).
    assert sum(q["sql"].startswith("SAVEPOINT") for q in queries.captured_queries) == 2


def test_a_task_row_the_database_refuses_fails_the_event_and_keeps_nothing_of_its_writes(source):
    # LocalTask.entity_id holds 200 characters: the batch insert fails inside the outcome's
    # transaction, after the handler resolved every assignee.
    event = make_event(source, payload=matter_payload(matter_id="m" * 300, location="miami"))

    assert event_process(event_id=event.id, task_id="t", worker="w:1") == EventStatus.RETRY_SCHEDULED

    event.refresh_from_db()
    assert (event.last_error_code, event.tasks_created) == (ErrorCode.INTERNAL, 0)
    assert "DataError" in event.last_error
    assert event.items.count() == 0
    assert LocalTask.objects.count() == 0
    attempt = event.attempt_log.get()
    assert (attempt.outcome, attempt.error_code) == ("retry_scheduled", ErrorCode.INTERNAL)
