"""The error-code catalogue and the one rule that says how each kind of error is retried.

Add a code here and everything that groups or filters by code (ledger, admin, stats) sees it.
"""

from django.conf import settings
from django.db import models


class ErrorCode(models.TextChoices):
    ASSIGNEE_NO_CSC = "ERR_ASSIGNEE_NO_CSC", "No CSC for the location"
    ASSIGNEE_NO_PARALEGAL = "ERR_ASSIGNEE_NO_PARALEGAL", "No paralegal for the location"
    ASSIGNEE_NOT_FOUND = "ERR_ASSIGNEE_NOT_FOUND", "No assignee for the role and location"
    CLIO_API_FAILED = "ERR_CLIO_API_FAILED", "Downstream API failed (5xx)"
    DOWNSTREAM_REJECTED = "ERR_DOWNSTREAM_REJECTED", "Downstream API rejected the request (4xx)"
    RATE_LIMITED = "ERR_RATE_LIMITED", "Downstream rate limit (429)"
    TIMEOUT = "ERR_TIMEOUT", "Downstream timed out"
    CONNECTION = "ERR_CONNECTION", "Could not connect downstream"
    VALIDATION = "ERR_VALIDATION", "Payload failed validation"
    INTERNAL = "ERR_INTERNAL", "Unexpected error in mendhook"
    SECRET_UNREADABLE = "ERR_SECRET_UNREADABLE", "A stored secret cannot be decrypted with the configured keys"
    # Outbound notifications (webhooks_app.services.outbound).
    RECEIVER_STATUS = "ERR_RECEIVER_STATUS", "Receiver answered with a non-2xx status"
    ENDPOINT_GONE = "ERR_ENDPOINT_GONE", "Receiver answered 410 Gone: endpoint disabled"
    ENDPOINT_DISABLED = "ERR_ENDPOINT_DISABLED", "Endpoint disabled before delivery"
    OUTBOUND_EXHAUSTED = "ERR_OUTBOUND_EXHAUSTED", "Notification failed after its last scheduled attempt"
    ENDPOINT_FAILING = "ERR_ENDPOINT_FAILING", "Endpoint failing for days: disabled"


class FailureKind(models.TextChoices):
    # Retried automatically with exponential backoff, then dead-lettered.
    TRANSIENT = "transient", "Transient"
    # A business gap someone can fix (a missing assignee rule): retried after a long delay.
    RECOVERABLE = "recoverable", "Recoverable"
    # Retrying cannot help; waits for a person.
    PERMANENT = "permanent", "Permanent"


TRANSIENT_CODES = frozenset(
    {
        ErrorCode.CLIO_API_FAILED,
        ErrorCode.RATE_LIMITED,
        ErrorCode.TIMEOUT,
        ErrorCode.CONNECTION,
        ErrorCode.RECEIVER_STATUS,
        # An unexpected exception is most often a passing fault; backoff then dead letter
        # bounds the cost when it is a bug.
        ErrorCode.INTERNAL,
    }
)


def failure_kind(code: str) -> FailureKind:
    if code in TRANSIENT_CODES:
        return FailureKind.TRANSIENT
    if code in settings.MENDHOOK_RECOVERABLE_ERROR_CODES:
        return FailureKind.RECOVERABLE
    return FailureKind.PERMANENT


class ProcessingError(Exception):
    """A failure with a catalogue code. Raised by handlers, assignee rules and connectors."""

    def __init__(self, message: str, *, code: ErrorCode, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        # Seconds the downstream asked us to wait (429 Retry-After); a floor for the backoff.
        self.retry_after = retry_after

    @property
    def kind(self) -> FailureKind:
        return failure_kind(self.code)
