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
    RUN_BUSY = "ERR_RUN_BUSY", "A workflow run's step is executing; the act waits for it"
    # Not failures of the downstream call: the call was held back (webhooks_app.breakers,
    # webhooks_app.rate_limits) and is deferred to when it may go, without using up attempts.
    CIRCUIT_OPEN = "ERR_CIRCUIT_OPEN", "Held back: the downstream's circuit breaker is open"
    RATE_LIMITED_LOCAL = "ERR_RATE_LIMITED_LOCAL", "Held back: our outbound rate limit for the downstream"
    # Workflow steps (workflows_app connectors).
    PROVIDER_FAILED = "ERR_PROVIDER_FAILED", "Voice, SMS or webhook provider failed (5xx)"
    INVALID_PHONE = "ERR_INVALID_PHONE", "The lead's phone number is not a valid number"
    WORKFLOW_START_REFUSED = "ERR_WORKFLOW_START_REFUSED", "The workflow to start does not exist or refused to start"
    # The worker running the attempt died (killed, out of memory, hard time limit) before it
    # recorded an outcome; counted like a transient failure so poison work ends in dead letter.
    WORKER_LOST = "ERR_WORKER_LOST", "The worker died or hit the hard time limit mid-attempt"
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
        ErrorCode.PROVIDER_FAILED,
        ErrorCode.RATE_LIMITED,
        ErrorCode.TIMEOUT,
        ErrorCode.CONNECTION,
        # A run's step finishes within its lease; asking again shortly succeeds.
        ErrorCode.RUN_BUSY,
        ErrorCode.RECEIVER_STATUS,
        # An unexpected exception is most often a passing fault; backoff then dead letter
        # bounds the cost when it is a bug.
        ErrorCode.INTERNAL,
        ErrorCode.CIRCUIT_OPEN,
        ErrorCode.RATE_LIMITED_LOCAL,
        ErrorCode.WORKER_LOST,
    }
)

# Transient codes for work that was never sent: nothing downstream failed, so a retry waits
# for the breaker's reset or the next rate window (its retry_after) and the attempt is given
# back (webhooks_app.services.processing): being held back can never dead-letter an event.
DEFERRAL_CODES = frozenset({ErrorCode.CIRCUIT_OPEN, ErrorCode.RATE_LIMITED_LOCAL})


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
