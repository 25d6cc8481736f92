"""Models of one event's life: who sends it, the event itself, its items and attempts."""

from webhooks_app.models.events import EventAction, EventStatus, ProcessingAttempt, WebhookEvent
from webhooks_app.models.items import EventItem, ItemStatus
from webhooks_app.models.outbound import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    DisabledReason,
    Endpoint,
    OutboundMessage,
)
from webhooks_app.models.sources import Organization, SigningScheme, Source, SourceKind
from webhooks_app.models.tasks import AssigneeRule, ConnectorKind, LocalTask, TaskTemplate

__all__ = [
    "AssigneeRule",
    "ConnectorKind",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryStatus",
    "DisabledReason",
    "Endpoint",
    "EventAction",
    "EventItem",
    "EventStatus",
    "ItemStatus",
    "LocalTask",
    "Organization",
    "OutboundMessage",
    "ProcessingAttempt",
    "SigningScheme",
    "Source",
    "SourceKind",
    "TaskTemplate",
    "WebhookEvent",
]
