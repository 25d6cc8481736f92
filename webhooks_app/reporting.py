"""Reporting a failure to the error records through logging, with typed arguments instead of
hand-built `extra` dicts.

The working apps never import ops_app: ops_app's ErrorRecordHandler (on the webhooks_app
logger) reads these attributes off the log record, and Sentry's logging integration sees the
same line. The attribute names are that handler's contract.
"""

import logging
import uuid
from typing import Any, Protocol


class _Source(Protocol):
    slug: str


class ReportedEvent(Protocol):
    """What a report reads of an event (a WebhookEvent); a protocol, so the models can report
    too without an import cycle."""

    id: uuid.UUID
    organization_id: int

    @property
    def source(self) -> _Source: ...


def report_failure(
    logger: logging.Logger,
    message: str,
    *args: object,
    level: int = logging.WARNING,
    function: str,
    action: str,
    event: ReportedEvent | None = None,
    event_id: uuid.UUID | str | None = None,
    organization_id: int | None = None,
    workflow_run_id: uuid.UUID | str | None = None,
    lead_id: int | str | None = None,
    error_code: str = "",
    payload: Any = None,
    with_source: bool = False,
    error_record: bool = True,
    exc_info: bool = False,
) -> None:
    """Log `message % args` at `level` as a failure of `function` doing `action`.

    `workflow_run_id` and `lead_id` tie it to a workflow run and its lead.
    `event` (or only its id when the row is not at hand) ties the record to the event and its
    organization (`organization_id` alone when there is no event); `payload` is kept with the
    record as the request that failed; `with_source` adds the source's slug (one more attribute
    for alerts); `error_record=False` keeps the line out of the error records (it repeats one
    already recorded).
    """
    extra: dict[str, Any] = {"function": function, "action": action}
    if event is not None:
        extra.update(event_id=str(event.id), organization_id=event.organization_id)
        if with_source:
            extra["source"] = event.source.slug
    elif event_id is not None:
        extra["event_id"] = str(event_id)
    if organization_id is not None and "organization_id" not in extra:
        extra["organization_id"] = organization_id
    if workflow_run_id is not None:
        extra["workflow_run_id"] = str(workflow_run_id)
    if lead_id is not None:
        extra["lead_id"] = str(lead_id)
    if error_code:
        extra["error_code"] = str(error_code)
    if payload is not None:
        extra["request_payload"] = payload
    if not error_record:
        extra["error_record"] = False
    logger.log(level, message, *args, exc_info=exc_info, extra=extra)
