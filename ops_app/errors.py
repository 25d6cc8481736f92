"""Persistent error records: `record_error` is the one way any failure is recorded, the logging
handler and the Celery `task_failure` hook feed it, and people resolve or reopen the groups.

How the working apps report an error without importing ops_app: they log at WARNING or above
on their own loggers, with context in `extra` (settings.LOGGING installs ErrorRecordHandler):

    logger.warning("...", extra={"event_id": ..., "organization_id": ..., "error_code": ...,
                                  "function": "...", "action": "...", "severity": "critical"})

Recognised extra keys: function, action, error_code, severity, request_payload, event_id,
organization_id, workflow_run_id, lead_id, campaign_id; `error_record: False` opts a line out
(for a log line that repeats a failure already recorded).

Transactions: a record must outlive the caller's transaction, since failures are exactly when
transactions roll back. Outside any transaction the record is written at once (autocommit).
Inside one, it is handed to a writer thread with its own database connection, so it commits
on its own; on SQLite that write waits for the caller's write lock, which is why the caller
never waits for it.

This module is imported by logging configuration before apps are ready: models are imported
inside functions only.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
import traceback
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connection

from ops_app.error_grouping import fingerprint
from ops_app.error_store import Occurrence, detached_writer, persist_safely

if TYPE_CHECKING:
    pass

# Failures of the recorder itself go here (the same logger as ops_app.error_store's): the console
# and Sentry, never back into the recorder.
fallback_logger = logging.getLogger("ops_app.errors")

MAX_MESSAGE_CHARS = 10_000
MAX_STACK_CHARS = 50_000
MAX_PAYLOAD_CHARS = 64_000
CONTEXT_KEYS = ("event_id", "organization_id", "workflow_run_id", "lead_id", "campaign_id")


def record_error(
    *,
    function: str,
    message: str,
    severity: str = "error",
    error_code: str = "",
    action: str = "",
    stack: str = "",
    request_payload: Any = None,
    organization_id: Any = None,
    event_id: Any = None,
    workflow_run_id: Any = "",
    lead_id: Any = "",
    campaign_id: Any = "",
    logger_name: str = "",
    now: datetime | None = None,
) -> None:
    """Record one occurrence of an error in its group. Never raises: a failure to record is
    logged to the `ops_app.errors` logger and the caller carries on."""
    try:
        occurrence = _occurrence(
            function=function,
            message=message,
            severity=severity,
            error_code=error_code,
            action=action,
            stack=stack,
            request_payload=request_payload,
            organization_id=organization_id,
            event_id=event_id,
            workflow_run_id=workflow_run_id,
            lead_id=lead_id,
            campaign_id=campaign_id,
            logger_name=logger_name,
            now=now,
        )
        if _in_caller_transaction():
            detached_writer.submit(occurrence)
        else:
            persist_safely(occurrence)
    except Exception:
        fallback_logger.warning("could not record error from %s: %s", function, message[:500], exc_info=True)


def _occurrence(
    *,
    function: str,
    message: str,
    severity: str,
    error_code: str,
    action: str,
    stack: str,
    request_payload: Any,
    organization_id: Any,
    event_id: Any,
    workflow_run_id: Any,
    lead_id: Any,
    campaign_id: Any,
    logger_name: str,
    now: datetime | None,
) -> Occurrence:
    from django.utils import timezone

    from ops_app.models import ErrorSeverity

    function = (str(function) or "unknown")[:200]
    error_code = str(error_code or "")[:50]
    message = str(message)[:MAX_MESSAGE_CHARS] or "(no message)"
    return Occurrence(
        fingerprint=fingerprint(function=function, error_code=error_code, message=message),
        function=function,
        action=str(action or "")[:100],
        error_code=error_code,
        logger=str(logger_name or "")[:200],
        severity=severity if severity in ErrorSeverity.values else ErrorSeverity.ERROR,
        message=message,
        stack=str(stack or "")[-MAX_STACK_CHARS:],
        request_payload=_json_safe(request_payload),
        organization_id=_as_int(organization_id),
        event_id=_as_uuid(event_id),
        workflow_run_id=str(workflow_run_id or "")[:64],
        lead_id=str(lead_id or "")[:64],
        campaign_id=str(campaign_id or "")[:64],
        seen_at=now or timezone.now(),
    )


def _json_safe(value: Any) -> Any:
    if value is None:
        return None
    text = json.dumps(value, default=str)
    if len(text) > MAX_PAYLOAD_CHARS:
        return {"truncated": True, "head": text[:MAX_PAYLOAD_CHARS]}
    return json.loads(text)


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _in_caller_transaction() -> bool:
    if not connection.in_atomic_block:
        return False
    # Django's TestCase wraps each test in atomic blocks it marks as its own; those belong to
    # the test harness, which rolls back everything anyway, not to a caller.
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


# --- Feeds: logging and Celery ----------------------------------------------------------------

_SEVERITY_BY_LEVEL = ((logging.CRITICAL, "critical"), (logging.ERROR, "error"), (logging.WARNING, "warning"))
# The task_failure hook records task failures with their arguments; the trace logger's line
# about the same failure would be a second group. celery.redirected is a task's stdout/stderr
# (prints, not errors), and the recorder's own fallback logger must never feed back into it.
SKIPPED_LOGGERS = frozenset({"celery.app.trace", "celery.redirected", fallback_logger.name})
_emitting = threading.local()


class ErrorRecordHandler(logging.Handler):
    """Persists WARNING+ log records as error records, with context from `extra`."""

    def __init__(self, level: int = logging.WARNING) -> None:
        super().__init__(level)

    def emit(self, record: logging.LogRecord) -> None:
        from django.apps import apps

        if record.name in SKIPPED_LOGGERS or getattr(record, "error_record", True) is False:
            return
        # Re-entry: recording logged something on a handled logger.
        if getattr(_emitting, "active", False) or not apps.ready:
            return
        _emitting.active = True
        try:
            record_error(**self.fields(record))
        except Exception:  # noqa: BLE001 - a log handler must never raise into the code that logged
            self.handleError(record)
        finally:
            _emitting.active = False

    @staticmethod
    def fields(record: logging.LogRecord) -> dict[str, Any]:
        severity = getattr(record, "severity", None) or next(
            (name for level, name in _SEVERITY_BY_LEVEL if record.levelno >= level), "warning"
        )
        stack = ""
        if record.exc_info and record.exc_info[1] is not None:
            stack = "".join(traceback.format_exception(*record.exc_info))
        elif record.stack_info:
            stack = record.stack_info
        return {
            "function": getattr(record, "function", None) or f"{record.name}.{record.funcName}",
            "action": getattr(record, "action", ""),
            "error_code": getattr(record, "error_code", ""),
            "severity": severity,
            "message": record.getMessage(),
            "stack": stack,
            "request_payload": getattr(record, "request_payload", None),
            "logger_name": record.name,
            **{key: getattr(record, key, None) for key in CONTEXT_KEYS},
        }


def task_failure_record(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = (),
    kwargs: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    """Celery `task_failure` receiver: a task raised out of its last try. Critical, because a
    task that raises is the machinery failing (failures the code expects end in a status)."""
    try:
        name = str(getattr(sender, "name", sender))
        record_error(
            function=name,
            action="celery_task",
            message=f"{type(exception).__name__}: {exception}",
            error_code=str(getattr(exception, "code", "") or ""),
            severity="critical",
            stack=str(einfo or ""),
            request_payload={"task_id": task_id, "args": list(args or ()), "kwargs": dict(kwargs or {})},
            logger_name="celery.app.trace",
            **_task_context(sender, args, kwargs),
        )
    except Exception:
        fallback_logger.warning("could not record the failure of task %s", task_id, exc_info=True)


def _task_context(task: Any, args: Any, kwargs: Any) -> dict[str, Any]:
    """Context ids among the task's arguments, by parameter name (event_id, lead_id, ...)."""
    try:
        bound = inspect.signature(task.run).bind_partial(*(args or ()), **(kwargs or {}))
    except (TypeError, ValueError, AttributeError):
        return {}
    return {key: bound.arguments[key] for key in CONTEXT_KEYS if key in bound.arguments}
