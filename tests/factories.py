import datetime
import uuid
from typing import Any

import factory
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from localdev.models import Booking
from ops_app.models import ApiKey, AuditAct, AuditEntry, AuditVia, ErrorRecord, Replay
from webhooks_app.models import (
    AssigneeRule,
    ConnectorKind,
    Endpoint,
    EventItem,
    ItemStatus,
    LocalTask,
    Organization,
    ProcessingAttempt,
    SigningScheme,
    Source,
    SourceKind,
    TaskTemplate,
    WebhookEvent,
)
from webhooks_app.models.sources import new_signing_secret, signing_secret_entries_for


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Firm {n}")
    slug = factory.Sequence(lambda n: f"firm-{n}")


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Source

    organization = factory.SubFactory(OrganizationFactory)
    slug = factory.Sequence(lambda n: f"source-{n}")
    kind = SourceKind.CLIO
    signing_scheme = SigningScheme.STANDARD_WEBHOOKS
    signing_secrets = factory.LazyFunction(lambda: [new_signing_secret()])
    connector = ConnectorKind.LOCAL


# --- Event records, and the ops room's models ------------------------------------------------


class TaskTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TaskTemplate

    organization = factory.SubFactory(OrganizationFactory)
    stage = "consultation"
    task_number = factory.Sequence(lambda n: n % 30000 + 1)
    title = factory.Sequence(lambda n: f"Task {n}")
    assignee_role = "csc"


class AssigneeRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AssigneeRule

    organization = factory.SubFactory(OrganizationFactory)
    role = "csc"
    location = factory.Sequence(lambda n: f"city-{n}")
    assignee = factory.Sequence(lambda n: f"csc.{n}")


class LocalTaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LocalTask

    organization = factory.SubFactory(OrganizationFactory)
    idempotency_key = factory.Sequence(lambda n: f"local-task-{n}")
    entity_id = factory.Sequence(lambda n: f"matter-{n}")
    title = factory.Sequence(lambda n: f"Task {n}")
    assignee = "csc.lee"


class WebhookEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookEvent

    source = factory.SubFactory(SourceFactory)
    organization = factory.SelfAttribute("source.organization")
    idempotency_key = factory.LazyFunction(lambda: uuid.uuid4().hex)
    event_type = "matter.stage_changed"
    entity_id = factory.Sequence(lambda n: f"matter-{n}")
    payload = factory.LazyAttribute(lambda event: {"matter_id": event.entity_id, "location": "miami"})


class EventItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EventItem

    event = factory.SubFactory(WebhookEventFactory)
    number = factory.Sequence(lambda n: n % 30000 + 1)
    title = factory.LazyAttribute(lambda item: f"Task {item.number}")
    idempotency_key = factory.LazyAttribute(lambda item: f"{item.event.id}:{item.number}")
    status = ItemStatus.SUCCEEDED


class ProcessingAttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProcessingAttempt

    event = factory.SubFactory(WebhookEventFactory)
    number = factory.Sequence(lambda n: n % 30000 + 1)
    task_id = factory.LazyFunction(lambda: uuid.uuid4().hex)
    worker = "worker@test"
    started_at = factory.LazyFunction(timezone.now)
    outcome = "succeeded"


class ApiKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiKey

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"dashboard {n}")

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> ApiKey:
        key = model_class(*args, **kwargs)
        key.set_new_key()
        key.save()
        return key


class ReplayFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Replay

    organization = factory.SubFactory(OrganizationFactory)
    requested_by = "ops.anna"
    statuses = factory.LazyFunction(lambda: ["partial_failure", "failed", "dead_letter"])
    matched_events = 0
    matched_items = 0
    batch_size = 100
    events_per_second = 50.0


class ErrorRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ErrorRecord

    fingerprint = factory.Sequence(lambda n: f"{n:064x}")
    function = "webhooks_app.tasks.process_event"
    error_code = "ERR_ASSIGNEE_NO_CSC"
    message = factory.Sequence(lambda n: f"No CSC found for location city-{n}")


class AuditEntryFactory(factory.django.DjangoModelFactory):
    """An audit entry about `target` (an event unless given)."""

    class Meta:
        model = AuditEntry
        exclude = ["target"]

    target = factory.SubFactory(WebhookEventFactory)
    target_type = factory.LazyAttribute(lambda entry: ContentType.objects.get_for_model(entry.target))
    target_id = factory.LazyAttribute(lambda entry: str(entry.target.pk))
    actor_label = "ops.anna"
    via = AuditVia.ADMIN
    act = AuditAct.RETRY_FAILED_ITEMS
    status_before = "partial_failure"
    status_after = "queued"


# --- Outbound notifications ------------------------------------------------------------------


class EndpointFactory(factory.django.DjangoModelFactory):
    """An endpoint with a signing secret (read it back with `signing_secrets_valid`)."""

    class Meta:
        model = Endpoint

    organization = factory.SubFactory(OrganizationFactory)
    url = "http://127.0.0.1:9/hooks"
    event_types = factory.LazyFunction(lambda: ["booking.created", "booking.approved", "booking.rejected"])
    signing_secret_entries = factory.LazyFunction(lambda: signing_secret_entries_for(new_signing_secret()))


class BookingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Booking

    organization = factory.SubFactory(OrganizationFactory)
    student_name = factory.Sequence(lambda n: f"Student {n}")
    student_email = factory.Sequence(lambda n: f"student{n}@example.com")
    tutor_name = "Ada Tutor"
    tutor_email = "ada.tutor@example.com"
    subject = "Algebra"
    starts_at = factory.LazyFunction(lambda: timezone.now() + datetime.timedelta(days=2))
