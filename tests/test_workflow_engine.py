"""The workflow engine end to end on a real worker, a real broker and the fake providers: seed
004's scenarios 1, 2 and 5, Retry-After, a worker SIGKILLed mid-step and healed, and beat's
dispatcher run twice at once."""

import base64
import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
import redis
from django.db import connection
from django.utils import timezone

from config.queues import Queue
from ops_app.models import ErrorRecord
from tests.factories import LeadFactory, WorkflowFactory, WorkflowStepFactory
from tests.support.fake_http import Fault
from tests.support.processes import PrivateRedis
from tests.support.waiting import wait_for
from tests.support.worker import ROOT, worker_env
from tests.support.workflows import execute, lead_of, settle_run, workflow_of
from workflows_app.models import (
    CallLog,
    RunStatus,
    StepExecution,
    StepOutcome,
    StepStatus,
    WorkflowRun,
)
from workflows_app.services.dispatch import runs_dispatch_due
from workflows_app.services.healing import runs_heal_stuck
from workflows_app.services.runs import RunAlreadyOpen, RunStartRefused, run_start

CALL = {"action_type": "call", "config": {"agent_id": "agent_1", "from_number": "+14155550100"}}
SMS = {"action_type": "sms", "config": {"body": "Hi {name}"}}
EMAIL = {"action_type": "email", "config": {"subject": "Hello", "body": "Hi"}}
QUALIFY = {"action_type": "update_lead", "config": {"status": "qualified"}}


def executions(run):
    return list(run.executions.order_by("attempt").values_list("outcome", "error_code"))


# --- Seed scenario 1: Retell down ------------------------------------------------------------


def test_retell_down_is_tried_three_times_then_the_run_fails_gracefully_with_an_error_record(
    worker, organization, fake_retell
):
    fake_retell.fail_next(Fault(503), Fault(503), Fault(503))
    workflow = workflow_of(organization, CALL, QUALIFY)
    run = run_start(workflow=workflow, lead=lead_of(organization), started_by="test")

    run = settle_run(run.id, {RunStatus.FAILED})

    assert (run.step_status, run.current_position, run.failure_code) == (StepStatus.FAILED, 1, "ERR_PROVIDER_FAILED")
    assert "retell failed: 503" in run.failure_reason
    assert executions(run) == [
        (StepOutcome.RETRY_SCHEDULED, "ERR_PROVIDER_FAILED"),
        (StepOutcome.RETRY_SCHEDULED, "ERR_PROVIDER_FAILED"),
        (StepOutcome.FAILED, "ERR_PROVIDER_FAILED"),
    ]
    assert len(fake_retell.requests) == 3 and fake_retell.creations == 0
    record = wait_for(lambda: ErrorRecord.objects.filter(workflow_run_id=str(run.id)).first())
    assert (record.error_code, record.function) == ("ERR_PROVIDER_FAILED", "workflows_app.tasks.execute_run_step")
    assert record.lead_id == str(run.lead_id)
    assert "API" not in record.message and fake_retell.api_key not in record.message


def test_a_workflow_runs_every_step_on_the_worker(worker, organization, fake_retell, fake_twilio):
    lead = lead_of(organization, name="Ada")
    run = run_start(workflow=workflow_of(organization, CALL, SMS, QUALIFY), lead=lead, started_by="test")

    run = settle_run(run.id, {RunStatus.COMPLETED, RunStatus.FAILED})

    assert run.status == RunStatus.COMPLETED
    assert [o for o, _ in executions(run)] == [StepOutcome.SUCCEEDED] * 3
    [call] = fake_retell.calls()
    assert CallLog.objects.get(provider_call_id=call["call_id"]).workflow_run_id == run.id
    assert [m["body"] for m in fake_twilio.messages()] == ["Hi Ada"]
    lead.refresh_from_db()
    assert lead.status == "qualified"


def test_a_429_retry_after_longer_than_the_backoff_is_honoured(worker, organization, fake_retell):
    fake_retell.fail_next(Fault(429, retry_after="2"))  # the backoff alone would wait 0.2 s
    run = run_start(workflow=workflow_of(organization, CALL), lead=lead_of(organization), started_by="test")

    run = settle_run(run.id, {RunStatus.COMPLETED, RunStatus.FAILED})

    assert run.status == RunStatus.COMPLETED
    assert executions(run) == [(StepOutcome.RETRY_SCHEDULED, "ERR_RATE_LIMITED"), (StepOutcome.SUCCEEDED, "")]
    first, second = (r["at"] for r in fake_retell.requests)
    assert second - first >= 2.0
    assert fake_retell.creations == 1


# --- Seed scenario 2: invalid phone and the other checks before a start ----------------------


@pytest.mark.django_db
def test_an_invalid_phone_blocks_the_start_with_a_clear_message(organization):
    lead = LeadFactory(organization=organization, name="Bob", phone="+1 555 0100")
    workflow = workflow_of(organization, CALL)

    with pytest.raises(RunStartRefused, match=r"lead 'Bob': phone '\+1 555 0100' is not a valid number"):
        run_start(workflow=workflow, lead=lead, started_by="test")
    assert not WorkflowRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("steps", "lead_fields", "workflow_fields", "message"),
    [
        ([SMS], {"phone": ""}, {}, "has no phone number and the workflow calls or texts"),
        ([EMAIL], {"email": ""}, {}, "has no email address and the workflow sends email"),
        ([QUALIFY], {}, {"active": False}, "is inactive"),
        ([], {}, {}, "has no steps"),
    ],
)
def test_a_run_that_would_fail_before_it_began_is_refused(organization, steps, lead_fields, workflow_fields, message):
    lead = LeadFactory(organization=organization, **lead_fields)
    workflow = workflow_of(organization, *steps, **workflow_fields)
    with pytest.raises(RunStartRefused, match=message):
        run_start(workflow=workflow, lead=lead, started_by="test")
    assert not WorkflowRun.objects.exists()


# --- Seed scenario 5: concurrent starts ------------------------------------------------------


def test_the_same_workflow_started_twice_at_once_makes_one_run(worker, organization):
    workflow = workflow_of(organization, QUALIFY)
    lead = lead_of(organization)
    barrier = threading.Barrier(2)
    results: list[object] = []

    def start() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(run_start(workflow=workflow, lead=lead, started_by="test").id)
        except RunAlreadyOpen as exc:
            results.append(("already open", exc.run.id))
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)

    [run] = WorkflowRun.objects.filter(workflow=workflow, lead=lead)
    assert sorted(results, key=str) == sorted([run.id, ("already open", run.id)], key=str)
    run = settle_run(run.id, {RunStatus.COMPLETED, RunStatus.FAILED})
    assert (run.status, run.executions.count()) == (RunStatus.COMPLETED, 1)


# --- Self-healing ----------------------------------------------------------------------------


def test_a_worker_killed_mid_call_is_healed_and_the_provider_places_one_call(worker, organization, fake_retell):
    fake_retell.hold_next = True  # the call is created, then its response hangs: the worker dies here
    fake_retell.gate.clear()
    run = run_start(workflow=workflow_of(organization, CALL), lead=lead_of(organization), started_by="test")
    assert fake_retell.held.wait(timeout=30), "the worker never placed the call"

    worker.kill()  # the main process and its pool children: a machine lost
    fake_retell.gate.set()
    worker.start()
    assert WorkflowRun.objects.get(id=run.id).step_status == StepStatus.EXECUTING

    # Beat's healer, once the dead worker's lease (3 s in tests) has run out.
    wait_for(lambda: runs_heal_stuck() == 1, timeout=20, interval=0.5, message="the healer to take the run back")
    run = settle_run(run.id, {RunStatus.COMPLETED, RunStatus.FAILED})

    assert (run.status, run.heals) == (RunStatus.COMPLETED, 1)
    assert [o for o, _ in executions(run)] == [StepOutcome.WORKER_LOST, StepOutcome.SUCCEEDED]
    keys = fake_retell.keys()
    assert len(keys) == 2 and len(set(keys)) == 1  # re-sent with the same idempotency key
    assert fake_retell.creations == 1
    assert CallLog.objects.filter(workflow_run=run).count() == 1


@pytest.mark.django_db
def test_the_healer_takes_back_only_steps_whose_worker_is_gone(organization, providers):
    now = timezone.now()
    workflow = workflow_of(organization, QUALIFY)

    def executing(**fields):
        run = run_start(workflow=workflow, lead=lead_of(organization), started_by="test")
        WorkflowRun.objects.filter(id=run.id).update(step_status=StepStatus.EXECUTING, claimed_by="gone", **fields)
        StepExecution.objects.create(
            run=run,
            position=1,
            action_type="update_lead",
            attempt=1,
            started_at=now,
            idempotency_key=f"wf:{run.id}:1:1",
        )
        return run

    expired = executing(claimed_until=now - timedelta(seconds=1))
    live = executing(claimed_until=now + timedelta(seconds=20))
    old_without_lease = executing(claimed_until=None, updated_at=now - timedelta(minutes=16))
    young_without_lease = executing(claimed_until=None, updated_at=now - timedelta(minutes=5))

    assert runs_heal_stuck(now=now) == 2
    assert runs_heal_stuck(now=now) == 0  # a second healer finds nothing left

    for run in (expired, old_without_lease):
        run.refresh_from_db()
        assert (run.step_status, run.heals, run.claimed_by) == (StepStatus.PENDING, 1, "")
        assert run.executions.get().outcome == StepOutcome.WORKER_LOST
        assert execute(run) == StepOutcome.SUCCEEDED
        assert run.executions.get(attempt=2).idempotency_key == f"wf:{run.id}:1:1"  # the same try
    for run in (live, young_without_lease):
        run.refresh_from_db()
        assert (run.step_status, run.heals) == (StepStatus.EXECUTING, 0)


# --- The dispatcher --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_dispatcher_publishes_each_due_run_once(organization, broker):
    workflow = workflow_of(organization, QUALIFY)
    due = [WorkflowRun.objects.create(
        organization=organization, workflow=workflow, lead=lead_of(organization),
        next_action_at=timezone.now() - timedelta(seconds=1), updated_at=timezone.now(),
    ) for _ in range(3)]  # fmt: skip
    later = WorkflowRun.objects.create(
        organization=organization,
        workflow=workflow,
        lead=lead_of(organization),
        next_action_at=timezone.now() + timedelta(minutes=5),
        updated_at=timezone.now(),
    )

    assert runs_dispatch_due() == 3
    assert runs_dispatch_due() == 0  # marked: not published again
    assert WorkflowRun.objects.get(id=later.id).dispatched_at is None
    # A marker whose message was lost (a broker restart) is published again after a while.
    WorkflowRun.objects.filter(id=due[0].id).update(dispatched_at=timezone.now() - timedelta(hours=1))
    assert runs_dispatch_due() == 1


@pytest.mark.django_db
def test_a_message_that_arrives_before_its_step_is_due_gives_the_run_back_to_the_dispatcher(organization, broker):
    workflow = workflow_of(organization, QUALIFY)
    soon = timezone.now() + timedelta(seconds=30)
    run = WorkflowRun.objects.create(
        organization=organization,
        workflow=workflow,
        lead=lead_of(organization),
        next_action_at=soon,
        dispatched_at=timezone.now(),
        updated_at=timezone.now(),
    )
    assert execute(run, wait_until_due=False) is None  # early: nothing runs
    assert (run.step_status, run.dispatched_at) == (StepStatus.PENDING, None)
    assert runs_dispatch_due(now=soon) == 1  # published again once due, not ten minutes later


DISPATCH_SCRIPT = """
import os, time
import django
django.setup()
from workflows_app.services.dispatch import runs_dispatch_due
time.sleep(max(0.0, float(os.environ["START_AT"]) - time.time()))
print("published", runs_dispatch_due())
"""


def test_two_dispatchers_running_at_once_publish_each_run_once(transactional_db, organization):
    workflow = WorkflowFactory(organization=organization)
    WorkflowStepFactory(workflow=workflow, position=1, action_type="update_lead")
    leads = LeadFactory.create_batch(300, organization=organization)
    now = timezone.now()
    runs = WorkflowRun.objects.bulk_create(
        WorkflowRun(organization=organization, workflow=workflow, lead=lead, next_action_at=now, updated_at=now)
        for lead in leads
    )
    broker = PrivateRedis().start()  # no worker consumes from it: every message stays to be counted
    try:
        env = {
            **os.environ,
            **worker_env(
                REDIS_URL=broker.url,
                CELERY_BROKER_URL=broker.url,
                DJANGO_SETTINGS_MODULE="config.settings",
                WORKFLOW_DISPATCH_BATCH="7",  # many small batches, so the two interleave
                WORKFLOW_DISPATCH_MAX_BATCHES="1000",
                START_AT=str(time.time() + 6),
            ),
        }
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", DISPATCH_SCRIPT], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        counts = [int(p.communicate(timeout=60)[0].split()[-1]) for p in procs]

        raw = redis.Redis.from_url(broker.url).lrange(Queue.WORKFLOWS.value, 0, -1)
    finally:
        broker.stop()
    published = [json.loads(base64.b64decode(json.loads(m)["body"]))[0][0] for m in raw]
    assert sum(counts) == len(published) == 300
    assert sorted(published) == sorted(str(r.id) for r in runs)  # each run exactly once
    assert min(counts) > 0, f"the two dispatchers did not overlap: {counts}"
