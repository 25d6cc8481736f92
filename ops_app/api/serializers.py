"""Input and output serializers of the read endpoints and of the acts on one event.

Output field names follow the webhook-metrics contract (camelCase); query parameters and request
bodies are snake_case. Rates are strings with two decimals, as in the contract ("98.08%", "1.12").
"""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ops_app.api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from ops_app.stats import COMPLETED, DEAD_LETTER, DEFAULT_RANGE, FAILED, PENDING, STATS_RANGES
from webhooks_app.models import EventStatus
from webhooks_app.models.events import ACTIONABLE, RETRY_PENDING

# What /failures lists: every event whose last attempt failed, including those that will retry.
FAILURE_STATUSES = ACTIONABLE


def _spelled(statuses: tuple[EventStatus, ...]) -> str:
    return " + ".join(str(s) for s in statuses)


# Each event counts once, by its status now; the fields add up to total (docs/architecture.md).
COMPLETED_HELP = f"{_spelled(COMPLETED)}."
FAILED_HELP = f"{_spelled(FAILED)}: some or all work failed and waits for a person."
DEAD_LETTER_HELP = f"{_spelled(DEAD_LETTER)}: transient failures outlasted the retries; waits for a person."
RETRY_PENDING_HELP = f"{_spelled(RETRY_PENDING)}: failed, and an automatic retry is scheduled."
PENDING_HELP = f"{_spelled(PENDING)}: not yet attempted, or an attempt is running."


@extend_schema_field({"type": "string", "example": "98.08%", "nullable": True})
class PercentField(serializers.Field):  # type: ignore[type-arg]
    def to_representation(self, value: float) -> str:
        return f"{value * 100:.2f}%"


@extend_schema_field({"type": "string", "example": "1.12", "nullable": True})
class DecimalTextField(serializers.Field):  # type: ignore[type-arg]
    def to_representation(self, value: float) -> str:
        return f"{value:.2f}"


# --- Inputs ----------------------------------------------------------------------------------


class DeliveryStatsQuery(serializers.Serializer):  # type: ignore[type-arg]
    range = serializers.ChoiceField(
        choices=list(STATS_RANGES),
        default=DEFAULT_RANGE,
        help_text="1h (5-minute buckets), 24h (1-hour), 7d (6-hour) or 30d (1-day).",
    )


class EventListQuery(serializers.Serializer):  # type: ignore[type-arg]
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT)
    error_code = serializers.CharField(
        max_length=50, required=False, help_text="The event's last error code, e.g. ERR_TIMEOUT."
    )
    # DRF lifts declared fields off the class, so naming one "source" is safe; mypy cannot tell.
    source = serializers.SlugField(max_length=100, required=False, help_text="A source's slug.")  # type: ignore[assignment]
    cursor = serializers.CharField(
        required=False, help_text="Opaque position from a previous page's `next` or `previous`."
    )


class FailuresQuery(EventListQuery):
    status = serializers.ChoiceField(
        choices=[str(s) for s in FAILURE_STATUSES],
        required=False,
        help_text="Only this status; by default every failure status.",
    )


class NoteInput(serializers.Serializer):  # type: ignore[type-arg]
    note = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, help_text="Why; kept in the audit trail."
    )


class ResolveInput(serializers.Serializer):  # type: ignore[type-arg]
    note = serializers.CharField(max_length=2000, help_text="Required: what was done outside mendhook (audited).")


# --- Delivery stats --------------------------------------------------------------------------


class CountsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    total = serializers.IntegerField(help_text="Events received in the window (or bucket), whatever their status.")
    completed = serializers.IntegerField(help_text=COMPLETED_HELP)
    failed = serializers.IntegerField(help_text=FAILED_HELP)
    deadLetter = serializers.IntegerField(source="dead_letter", help_text=DEAD_LETTER_HELP)
    retryPending = serializers.IntegerField(source="retry_pending", help_text=RETRY_PENDING_HELP)
    pending = serializers.IntegerField(help_text=PENDING_HELP)


class SummarySerializer(CountsSerializer):
    successRate = PercentField(
        source="success_rate",
        allow_null=True,
        help_text="completed / total; null when total is 0 (queue-health's failureRate has the same denominator).",
    )
    avgAttempts = DecimalTextField(
        source="avg_attempts",
        allow_null=True,
        help_text="Mean processing attempts of finished (completed, failed, dead-letter) events; "
        "null when none finished.",
    )


class BucketSerializer(CountsSerializer):
    start = serializers.DateTimeField(help_text="Inclusive.")
    end = serializers.DateTimeField(help_text="Exclusive.")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        # A bucket is its bounds plus its counts, flat, as dashboards chart them.
        counts: dict[str, Any] = CountsSerializer(instance.counts).data
        bounds = {name: self.fields[name].to_representation(getattr(instance, name)) for name in ("start", "end")}
        return {**bounds, **counts}


class DeliveryStatsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    timeRange = serializers.CharField(source="time_range.name")
    # help texts land in the schema: the window's definition is part of the contract.
    start = serializers.DateTimeField(
        help_text="Window start, inclusive. Windows end with the bucket holding the request time; "
        "buckets sit on a UTC grid (multiples of their size since the Unix epoch)."
    )
    end = serializers.DateTimeField(help_text="Window end, exclusive: the end of the current bucket.")
    bucketSeconds = serializers.IntegerField(source="bucket_seconds", help_text="300, 3600, 21600 or 86400.")
    summary = SummarySerializer(help_text="Events received in [start, end), by outcome.")
    byEventType = serializers.DictField(source="by_event_type", child=CountsSerializer())
    bySource = serializers.DictField(source="by_source", child=CountsSerializer(), help_text="By source slug.")
    generatedAt = serializers.DateTimeField(
        source="generated_at", help_text="When the figures were computed (7d and 30d may be up to 30 s old)."
    )
    buckets = BucketSerializer(
        many=True,
        help_text="Every bucket of the window in order, empty ones included; an event "
        "belongs to the bucket with start <= received_at < end.",
    )


# --- Queue health ----------------------------------------------------------------------------

SHARED = "Shared queues of the whole installation (broker/workers), not per organization; "
WINDOW = "Events received in delivery-stats' 24h window, by status now: "


class QueueMetricsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    waiting = serializers.IntegerField(allow_null=True, help_text=SHARED + "messages in the broker queues.")
    active = serializers.IntegerField(allow_null=True, help_text=SHARED + "tasks running on workers.")
    reserved = serializers.IntegerField(allow_null=True, help_text=SHARED + "tasks prefetched by workers.")
    unacked = serializers.IntegerField(
        allow_null=True,
        help_text=SHARED + "messages delivered to workers and not yet acknowledged; null when the broker "
        "cannot tell (AMQP).",
    )
    # The same figures as delivery-stats?range=24h's summary: events received in that window,
    # each counted once by its status now.
    completed = serializers.IntegerField(source="events.completed", help_text=WINDOW + COMPLETED_HELP)
    failed = serializers.IntegerField(source="events.failed", help_text=WINDOW + FAILED_HELP)
    deadLetter = serializers.IntegerField(source="events.dead_letter", help_text=WINDOW + DEAD_LETTER_HELP)
    retryPending = serializers.IntegerField(source="events.retry_pending", help_text=WINDOW + RETRY_PENDING_HELP)
    delayed = serializers.IntegerField(
        source="events.scheduled_retries", help_text="Events in retry_scheduled now, whenever received."
    )
    paused = serializers.IntegerField(
        allow_null=True, help_text=SHARED + "messages waiting in queues no online worker consumes."
    )


class QueueStatsSerializer(serializers.Serializer):  # type: ignore[type-arg]
    totalJobs = serializers.IntegerField(
        source="total_jobs", allow_null=True, help_text="waiting + reserved + active + delayed."
    )
    failureRate = PercentField(
        source="failure_rate",
        allow_null=True,
        help_text="(failed + deadLetter) / events received in delivery-stats' 24h window (the denominator of "
        "its successRate); null when none.",
    )
    queueDepth = serializers.IntegerField(source="waiting", allow_null=True, help_text="Same as metrics.waiting.")
    oldestWaitingSeconds = serializers.FloatField(
        source="oldest_waiting_seconds",
        allow_null=True,
        help_text="How long the organization's oldest received/queued event has waited; null when none.",
    )
    workersOnline = serializers.IntegerField(source="workers_online", allow_null=True)


class QueueDetailSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField()
    waiting = serializers.IntegerField(allow_null=True)
    active = serializers.IntegerField(allow_null=True)
    reserved = serializers.IntegerField(allow_null=True)
    workers = serializers.IntegerField(allow_null=True, help_text="Online workers consuming this queue.")
    unacked = serializers.IntegerField(
        allow_null=True, help_text="Delivered to a worker, not yet acknowledged; null when the broker cannot tell."
    )
    scheduledRetries = serializers.IntegerField(source="scheduled_retries")
    failed = serializers.IntegerField(help_text="As metrics.failed; only the webhooks queue runs events.")
    deadLetter = serializers.IntegerField(source="dead_letter")
    oldestWaitingSeconds = serializers.FloatField(source="oldest_waiting_seconds", allow_null=True)


class QueueHealthSerializer(serializers.Serializer):  # type: ignore[type-arg]
    healthy = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.CharField(), help_text="Why not healthy; empty when healthy.")
    metrics = QueueMetricsSerializer(source="*")
    stats = QueueStatsSerializer(source="*")
    queues = QueueDetailSerializer(many=True)
    timestamp = serializers.DateTimeField()


# --- Events ----------------------------------------------------------------------------------


class FailureSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.UUIDField()
    jobId = serializers.CharField(source="job_id", allow_null=True, help_text="Celery task id of the last attempt.")
    eventType = serializers.CharField(source="event_type")
    source = serializers.CharField(source="source.slug")  # type: ignore[assignment]
    status = serializers.ChoiceField(choices=EventStatus.choices)
    attempts = serializers.IntegerField()
    maxAttempts = serializers.IntegerField(source="max_attempts")
    errorCode = serializers.CharField(source="last_error_code")
    errorMessage = serializers.CharField(source="last_error")
    tasksFailed = serializers.IntegerField(source="tasks_failed")
    createdAt = serializers.DateTimeField(source="received_at", help_text="When mendhook received the webhook.")
    lastAttemptAt = serializers.DateTimeField(source="last_attempt_at", allow_null=True)
    nextRetryAt = serializers.DateTimeField(source="next_retry_at", allow_null=True)
    completedAt = serializers.DateTimeField(source="completed_at", allow_null=True)


class PageSerializer(serializers.Serializer):  # type: ignore[type-arg]
    count = serializers.IntegerField(help_text="Number of entries in this page.")
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


class FailuresPageSerializer(PageSerializer):
    failures = FailureSerializer(many=True)


class FailureDetailSerializer(serializers.Serializer):  # type: ignore[type-arg]
    task_title = serializers.CharField()
    task_number = serializers.IntegerField()
    error = serializers.CharField()
    error_code = serializers.CharField()


class DeadLetterSerializer(FailureSerializer):
    entityId = serializers.CharField(source="entity_id")
    failureDetails = FailureDetailSerializer(source="failure_details", many=True, allow_null=True)
    payload = serializers.JSONField()


class DeadLettersPageSerializer(PageSerializer):
    deadLetters = DeadLetterSerializer(many=True)


class ItemSerializer(serializers.Serializer):  # type: ignore[type-arg]
    number = serializers.IntegerField()
    title = serializers.CharField()
    status = serializers.CharField()
    assignee = serializers.CharField()
    downstreamId = serializers.CharField(source="downstream_id")
    errorCode = serializers.CharField(source="error_code")
    error = serializers.CharField()
    failureKind = serializers.CharField(source="failure_kind")
    attempts = serializers.IntegerField()
    updatedAt = serializers.DateTimeField(source="updated_at")


class AttemptSerializer(serializers.Serializer):  # type: ignore[type-arg]
    number = serializers.IntegerField()
    taskId = serializers.CharField(source="task_id")
    worker = serializers.CharField()
    startedAt = serializers.DateTimeField(source="started_at")
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)
    durationMs = serializers.IntegerField(source="duration_ms", allow_null=True)
    outcome = serializers.CharField()
    error = serializers.CharField()
    errorCode = serializers.CharField(source="error_code")


# The audit's act names as this API has always called them.
API_KINDS = {
    "retry_failed_items": "retry_failed",
    "requeue_dead_letters": "requeue_dead_letter",
    "mark_resolved": "resolve",
}


class OperatorActionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    kind = serializers.CharField(source="act")
    actor = serializers.CharField(source="actor_label")
    via = serializers.CharField()
    note = serializers.CharField()
    statusBefore = serializers.CharField(source="status_before")
    createdAt = serializers.DateTimeField(source="created_at")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        data["kind"] = API_KINDS.get(data["kind"], data["kind"])
        return data


class EventSerializer(DeadLetterSerializer):
    success = serializers.BooleanField(allow_null=True)
    action = serializers.CharField()
    tasksCreated = serializers.IntegerField(source="tasks_created")
    items = ItemSerializer(many=True)
    attemptLog = AttemptSerializer(source="attempt_log", many=True, help_text="The delivery log: one per attempt.")
    operatorActions = OperatorActionSerializer(source="audit_trail", many=True, help_text="Audit trail.")


class EventStateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=EventStatus.choices)


class ActResultSerializer(serializers.Serializer):  # type: ignore[type-arg]
    success = serializers.BooleanField()
    message = serializers.CharField()
    event = EventStateSerializer()
    action = OperatorActionSerializer(help_text="The audit record of this act.")


# --- Circuit breakers ------------------------------------------------------------------------


class BreakerSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField(help_text='"clio:<source slug>", or a shared provider: "retell", "twilio", ...')
    state = serializers.ChoiceField(choices=["closed", "open", "half-open"])
    failures = serializers.IntegerField(help_text="Transient failures in a row counted so far.")
    openedAt = serializers.DateTimeField(source="opened_at", allow_null=True, help_text="Set while not closed.")
    secondsUntilProbe = serializers.FloatField(source="seconds_until_probe")
    failMax = serializers.IntegerField(source="fail_max")
    resetSeconds = serializers.FloatField(source="reset_seconds")


class BreakersSerializer(serializers.Serializer):  # type: ignore[type-arg]
    breakers = BreakerSerializer(many=True)
