"""Local steps (update_lead, start_workflow, wait) run in one transaction with their attempt's
row and outcome: a step that dies half-way leaves nothing behind and its run as it was, two
messages for the same run still execute it once, and a step that fails at the database keeps
none of its writes but records its failure. The transactional tests take the `broker` fixture:
the run's publish on commit then reaches no worker, and only the test executes the step."""

import threading
from collections.abc import Callable
from typing import Any

from django.db import OperationalError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from ops_app.models import ErrorRecord
from tests.support.waiting import wait_for
from tests.support.workflows import execute, lead_of, workflow_of
from workflows_app.models import (
    Lead,
    LeadStatus,
    RunStatus,
    StepExecution,
    StepOutcome,
    StepStatus,
    WorkflowStep,
)
from workflows_app.services.execution import run_step_execute
from workflows_app.services.runs import run_start

CONTACT = {"action_type": "update_lead", "config": {"status": "contacted"}}
QUALIFY = {"action_type": "update_lead", "config": {"status": "qualified", "custom_fields": {"score": 7}}}


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `target` on a thread of its own (so on a database connection of its own)."""
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            box["result"] = target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test to assert on
            box["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=body)
    thread.start()
    return thread, box


def backend_waiting_on_lock(query_start: str) -> int | None:
    """The pid of a backend (other than this one) waiting for a row lock in a query starting
    with `query_start`."""
    with connection.cursor() as cursor:
        # Inside a transaction PostgreSQL keeps the first statistics snapshot; a fresh one each time.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid() "
            "AND query LIKE %s",
            [query_start + "%"],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else None


def test_a_local_step_commits_its_attempt_its_write_and_its_outcome_together(transactional_db, broker, organization):
    lead = lead_of(organization, status=LeadStatus.NEW)
    run = run_start(workflow=workflow_of(organization, CONTACT), lead=lead, started_by="test")

    with CaptureQueriesContext(connection) as queries:
        outcome = run_step_execute(run_id=run.id, task_id="task-1", worker="test:0")

    assert outcome == StepOutcome.SUCCEEDED
    statements = [q["sql"] for q in queries.captured_queries]
    # One transaction; the run never shows as executing to anyone else.
    assert sum(1 for sql in statements if sql.startswith("COMMIT")) == 1, statements
    run.refresh_from_db()
    lead.refresh_from_db()
    assert (run.status, run.step_status, run.claimed_by, run.dispatched_at) == (
        RunStatus.COMPLETED,
        StepStatus.COMPLETED,
        "",
        None,
    )
    assert lead.status == LeadStatus.CONTACTED
    assert list(run.executions.values_list("attempt", "outcome", "task_id", "provider_id")) == [
        (1, StepOutcome.SUCCEEDED, "task-1", str(lead.id))
    ]


def test_the_next_local_step_is_published_marked_and_runs_after_the_first(organization):
    lead = lead_of(organization, status=LeadStatus.NEW, custom_fields={"source": "ads"})
    run = run_start(workflow=workflow_of(organization, CONTACT, QUALIFY), lead=lead, started_by="test")

    assert execute(run) == StepOutcome.SUCCEEDED
    # At step 2, due now, already marked as published: the dispatcher leaves it alone.
    assert (run.current_position, run.step_status, run.dispatched_at is not None) == (2, StepStatus.PENDING, True)
    assert execute(run) == StepOutcome.SUCCEEDED
    lead.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert (lead.status, lead.custom_fields) == (LeadStatus.QUALIFIED, {"source": "ads", "score": 7})


def test_a_worker_dying_inside_a_local_step_leaves_the_run_claimable_and_the_lead_unchanged(
    transactional_db, broker, organization
):
    lead = lead_of(organization, status=LeadStatus.NEW)
    run = run_start(workflow=workflow_of(organization, CONTACT), lead=lead, started_by="test")

    # Someone else holds the lead's row, so the step's UPDATE of it waits; its database
    # connection then dies as a killed worker's does, in the middle of the step's transaction.
    with transaction.atomic():
        Lead.objects.select_for_update().get(id=lead.id)
        thread, box = in_thread(lambda: run_step_execute(run_id=run.id, task_id="task-dies", worker="test:1"))
        pid = wait_for(lambda: backend_waiting_on_lock('UPDATE "workflows_app_lead"'), timeout=10)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        thread.join(timeout=10)
    assert isinstance(box.get("error"), OperationalError), box

    run.refresh_from_db()
    lead.refresh_from_db()
    assert (run.status, run.step_status, run.claimed_by) == (RunStatus.ACTIVE, StepStatus.PENDING, "")
    assert lead.status == LeadStatus.NEW
    assert not StepExecution.objects.filter(run=run).exists()
    # The redelivered message (or any other) executes the step, once.
    assert run_step_execute(run_id=run.id, task_id="task-dies", worker="test:2") == StepOutcome.SUCCEEDED
    lead.refresh_from_db()
    assert lead.status == LeadStatus.CONTACTED
    assert list(run.executions.values_list("attempt", "outcome")) == [(1, StepOutcome.SUCCEEDED)]


def test_two_messages_for_one_local_step_execute_it_once(transactional_db, broker, organization):
    lead = lead_of(organization, status=LeadStatus.NEW)
    run = run_start(workflow=workflow_of(organization, CONTACT), lead=lead, started_by="test")

    with transaction.atomic():
        Lead.objects.select_for_update().get(id=lead.id)
        # The first message holds the run's row and waits on the lead; the second waits on the run.
        first, first_box = in_thread(lambda: run_step_execute(run_id=run.id, task_id="task-a", worker="test:1"))
        wait_for(lambda: backend_waiting_on_lock('UPDATE "workflows_app_lead"'), timeout=10)
        second, second_box = in_thread(lambda: run_step_execute(run_id=run.id, task_id="task-b", worker="test:2"))
        wait_for(lambda: backend_waiting_on_lock('SELECT "workflows_app_workflowrun"'), timeout=10)
    first.join(timeout=10)
    second.join(timeout=10)

    assert (first_box, second_box) == ({"result": StepOutcome.SUCCEEDED}, {"result": None})
    assert list(run.executions.values_list("task_id", "outcome")) == [("task-a", StepOutcome.SUCCEEDED)]


def test_a_local_step_failing_at_the_database_keeps_none_of_its_writes_and_records_its_failure(organization):
    lead = lead_of(organization, status=LeadStatus.NEW, custom_fields={"source": "ads"})
    run = run_start(workflow=workflow_of(organization, QUALIFY), lead=lead, started_by="test")
    # A status longer than the column (only a bug could store it: the config schema refuses it),
    # written after the custom fields were merged.
    WorkflowStep.objects.filter(workflow=run.workflow).update(
        config={"status": "x" * 40, "custom_fields": {"score": 7}}
    )

    # An unexpected error counts as transient: tried again with backoff, then the strategy.
    assert execute(run) == StepOutcome.RETRY_SCHEDULED

    lead.refresh_from_db()
    assert (lead.status, lead.custom_fields) == (LeadStatus.NEW, {"source": "ads"})
    assert (run.status, run.step_status, run.failure_code) == (RunStatus.ACTIVE, StepStatus.RETRYING, "ERR_INTERNAL")
    assert list(run.executions.values_list("attempt", "outcome", "error_code")) == [
        (1, StepOutcome.RETRY_SCHEDULED, "ERR_INTERNAL")
    ]
    assert ErrorRecord.objects.filter(workflow_run_id=run.id, action="step_local").exists()
