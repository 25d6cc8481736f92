"""Error records: one row per group of identical failures, fed by logging and Celery, written
whatever happens to the caller's transaction, and never an error of their own."""

import logging
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from ops_app import error_store, errors
from ops_app.acts import act_run
from ops_app.acts.error_groups import RESOLVE_ERROR_GROUP
from ops_app.error_grouping import fingerprint, normalize_message
from ops_app.errors import ErrorRecordHandler, record_error
from ops_app.models import AuditEntry, ErrorRecord
from tests.support.signing import matter_payload
from tests.support.waiting import wait_for
from webhooks_app.models import EventStatus, WebhookEvent
from webhooks_app.services.operations import Actor
from webhooks_app.tasks import process_event

TASK = "webhooks_app.tasks.process_event"


def errors_pause_lift() -> None:
    # Through the module, as tests must not wait out PAUSE_AFTER_CONNECTION_ERROR_SECONDS.
    error_store._paused_until = 0.0


@pytest.fixture(autouse=True)
def _writes_not_paused():
    # A connection error elsewhere in the session must not pause these tests' writes.
    errors_pause_lift()


def test_it_strips_numbers_uuids_and_ids_from_the_message():
    assert (
        normalize_message("event 3f0c7c8e-1d2a-4b5c-9d8e-7f6a5b4c3d2e item #6 failed:  evt_9f8e7d6c  took 3021 ms")
        == "event <uuid> item #<n> failed: <id> took <n> ms"
    )
    assert normalize_message("No CSC found for location: naples") == "no csc found for location: naples"


@pytest.mark.django_db
def test_it_groups_occurrences_that_differ_only_by_ids_into_one_record():
    first_seen = timezone.now() - timedelta(minutes=5)
    first_event, last_event = uuid.uuid4(), uuid.uuid4()
    record_error(
        function=TASK,
        message=f"event {first_event} item #6 failed: No CSC found for location: naples",
        error_code="ERR_ASSIGNEE_NO_CSC",
        severity="warning",
        event_id=first_event,
        organization_id=1,
        now=first_seen,
    )
    for _ in range(3):
        record_error(
            function=TASK,
            message=f"event {last_event} item #6 failed: No CSC found for location: naples",
            error_code="ERR_ASSIGNEE_NO_CSC",
            severity="warning",
            event_id=last_event,
            organization_id=2,
        )

    record = ErrorRecord.objects.get()
    assert record.occurrences == 4
    assert record.first_seen_at == first_seen and record.last_seen_at > first_seen
    # The context is that of the latest occurrence.
    assert (record.event_id, record.organization_id) == (last_event, 2)
    assert record.fingerprint == fingerprint(function=TASK, error_code="ERR_ASSIGNEE_NO_CSC", message=record.message)


@pytest.mark.django_db
def test_a_different_code_function_or_message_is_a_different_group():
    record_error(function=TASK, message="No CSC found for location: naples", error_code="ERR_ASSIGNEE_NO_CSC")
    record_error(function=TASK, message="No CSC found for location: naples", error_code="ERR_ASSIGNEE_NOT_FOUND")
    record_error(function="other.task", message="No CSC found for location: naples", error_code="ERR_ASSIGNEE_NO_CSC")
    record_error(function=TASK, message="No CSC found for location: tampa", error_code="ERR_ASSIGNEE_NO_CSC")

    assert ErrorRecord.objects.count() == 4


@pytest.mark.django_db
def test_a_resolved_group_that_happens_again_reopens_and_its_history_says_so(django_user_model):
    anna = django_user_model.objects.create_user("anna")
    record_error(function=TASK, message="boom 1", severity="error")
    record = ErrorRecord.objects.get()
    act_run(act=RESOLVE_ERROR_GROUP, target=record, actor=Actor.from_user(anna), note="fixed in deploy 42")

    record_error(function=TASK, message="boom 2", severity="error")

    record.refresh_from_db()
    assert (record.resolved, record.resolved_by, record.resolution_note, record.occurrences) == (False, None, "", 2)
    history = AuditEntry.objects.for_target(record)
    assert list(history.values_list("act", "actor_label", "via")) == [
        ("recurred", "system", "system"),
        ("resolve_error_group", "anna", "admin"),
    ]
    assert history.get(act="resolve_error_group").note == "fixed in deploy 42"


@pytest.mark.django_db
def test_the_severity_of_a_group_only_ever_rises():
    for severity in ("warning", "critical", "error", "warning"):
        record_error(function=TASK, message="same thing", severity=severity)

    assert ErrorRecord.objects.get().severity == "critical"


@pytest.mark.django_db
def test_it_keeps_big_payloads_and_odd_values_without_failing():
    record_error(
        function=TASK,
        message="x" * 20_000,
        request_payload={"blob": "y" * 100_000, "when": timezone.now()},
        event_id="not-a-uuid",
        organization_id="seven",
        severity="bogus",
    )

    record = ErrorRecord.objects.get()
    assert len(record.message) == errors.MAX_MESSAGE_CHARS
    assert record.request_payload["truncated"] is True
    assert (record.event_id, record.organization_id, record.severity) == (None, None, "error")


@pytest.mark.django_db
def test_it_never_raises_when_the_database_write_fails(caplog):
    # PostgreSQL refuses a NUL character in text: a real failed write, not a simulated one.
    record_error(function=TASK, message="cannot be stored \x00 here")
    logging.getLogger("webhooks_app.services.processing").error("nor can \x00 this", extra={"event_id": "x"})

    assert "could not record error from webhooks_app.tasks.process_event: cannot be stored" in caplog.text
    assert "could not record error from webhooks_app.services.processing.test_it_never_raises" in caplog.text
    assert not ErrorRecord.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_after_a_connection_error_it_stops_trying_for_a_while(caplog):
    # The recorder's connection dies under it, as in a database restart.
    connection.ensure_connection()
    assert connection.connection is not None
    connection.connection.close()

    for _ in range(5):
        record_error(function=TASK, message="database is down")

    connection.close()  # the next query reconnects
    assert caplog.text.count("could not record error from webhooks_app.tasks.process_event: database is down") == 1
    assert caplog.text.count("database unavailable; not recorded") == 4
    assert not ErrorRecord.objects.exists()  # paused: nothing written, even now the database is back
    errors_pause_lift()


# --- The logging handler -------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_handler_turns_warnings_of_the_working_apps_into_records_with_their_context():
    event_id = uuid.uuid4()
    logging.getLogger("webhooks_app.handlers.task_generation").warning(
        "event %s item #%s failed: [%s] %s",
        event_id,
        6,
        "ERR_ASSIGNEE_NO_CSC",
        "No CSC found for location: naples",
        extra={
            "event_id": str(event_id),
            "organization_id": 3,
            "error_code": "ERR_ASSIGNEE_NO_CSC",
            "function": TASK,
            "action": "create_item",
            "request_payload": {"item": 6},
        },
    )

    record = ErrorRecord.objects.get()
    assert (record.function, record.action, record.error_code, record.severity, record.logger) == (
        TASK,
        "create_item",
        "ERR_ASSIGNEE_NO_CSC",
        "warning",
        "webhooks_app.handlers.task_generation",
    )
    assert (record.event_id, record.organization_id, record.request_payload) == (event_id, 3, {"item": 6})


@pytest.mark.django_db
def test_the_handler_records_the_stack_of_logged_exceptions_and_names_the_function_when_not_told():
    try:
        raise KeyError("matter_id")
    except KeyError:
        logging.getLogger("workflows_app.runs").exception("step crashed")

    record = ErrorRecord.objects.get()
    assert record.function.startswith("workflows_app.runs.test_the_handler_records")
    assert "KeyError: 'matter_id'" in record.stack
    assert record.severity == "error"


@pytest.mark.django_db
def test_the_handler_ignores_info_other_loggers_and_lines_that_opt_out():
    logging.getLogger("webhooks_app.services").info("all good")
    logging.getLogger("somebody.else").error("not ours")
    logging.getLogger("webhooks_app.tasks").error("ALERT repeated", extra={"error_record": False})

    assert not ErrorRecord.objects.exists()


def test_the_handler_is_installed_on_the_working_apps_and_celery_loggers():
    for name in ("webhooks_app", "workflows_app", "celery"):
        assert any(isinstance(h, ErrorRecordHandler) for h in logging.getLogger(name).handlers), name


# --- Transactions and concurrency ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_record_made_inside_a_transaction_that_rolls_back_is_kept():
    with pytest.raises(RuntimeError), transaction.atomic():
        WebhookEvent.objects.all().delete()  # some work of the caller, rolled back with it
        record_error(function=TASK, message="failed mid-transaction", severity="critical")
        raise RuntimeError("the caller's transaction rolls back")

    assert error_store.detached_writer.flush(timeout=10)
    assert ErrorRecord.objects.get().message == "failed mid-transaction"


@pytest.mark.django_db(transaction=True)
def test_concurrent_occurrences_of_a_new_error_are_each_counted_once_in_one_row():
    barrier = threading.Barrier(8)

    def storm():
        barrier.wait()
        try:
            for _ in range(5):
                record_error(function=TASK, message="storm of the same error")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=storm) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    record = ErrorRecord.objects.get()
    assert record.occurrences == 40


# --- Real failures through a real worker -----------------------------------------------------------


@pytest.mark.integration
def test_a_real_partial_failure_in_processing_produces_one_grouped_record(worker, source, post_webhook):
    ids = []
    for matter in (501, 502, 503):
        response = post_webhook(source, matter_payload(matter_id=matter, location="naples"))
        ids.append(response.json()["id"])

    def recorded():
        record = ErrorRecord.objects.filter(error_code="ERR_ASSIGNEE_NO_CSC").first()
        return record if record and record.occurrences == 3 else None

    record = wait_for(recorded, message="three ERR_ASSIGNEE_NO_CSC occurrences in one group")
    assert ErrorRecord.objects.filter(error_code="ERR_ASSIGNEE_NO_CSC").count() == 1
    assert (record.function, record.action, record.severity) == (TASK, "create_item", "warning")
    assert "No CSC found for location: naples" in record.message
    assert record.organization_id == source.organization_id
    assert str(record.event_id) in ids
    assert all(WebhookEvent.objects.get(id=i).status == EventStatus.RETRY_SCHEDULED for i in ids)


@pytest.mark.integration
def test_a_celery_task_that_raises_is_recorded_as_critical_by_the_task_failure_hook(worker):
    process_event.apply_async(args=("not-a-uuid",))

    record = wait_for(lambda: ErrorRecord.objects.filter(function=TASK, action="celery_task").first())
    assert record.severity == "critical"
    assert "ValueError" in record.message and "Traceback" in record.stack
    assert record.request_payload["args"] == ["not-a-uuid"]
