import datetime
import uuid
from typing import Any

import factory
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from localdev.models import Booking
from ops_app.models import (
    Alert,
    AlertCondition,
    ApiKey,
    AuditAct,
    AuditEntry,
    AuditVia,
    Diagnostic,
    DiagnosticKind,
    DiagnosticSeverity,
    ErrorRecord,
    Replay,
)
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
from workflows_app.models import (
    ActionExecution,
    ActionType,
    CallLog,
    CallProvider,
    CallStatus,
    Disposition,
    DispositionAction,
    DispositionActionType,
    Lead,
    RunStatus,
    StepExecution,
    StepStatus,
    Workflow,
    WorkflowRun,
    WorkflowStep,
)


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


# --- Calls and dispositions (workflows_app) --------------------------------------------------


class CallLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CallLog

    organization = factory.SubFactory(OrganizationFactory)
    provider = CallProvider.RETELL
    provider_call_id = factory.Sequence(lambda n: f"call_{n:08d}")
    status = CallStatus.ENDED
    duration_seconds = 95.0
    transcript = "Agent: Hello.\nUser: Call me back tomorrow."


class DispositionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Disposition

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Disposition {n}")


class DispositionActionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DispositionAction

    disposition = factory.SubFactory(DispositionFactory)
    position = factory.Sequence(lambda n: n % 30000 + 1)
    action_type = DispositionActionType.UPDATE_LEAD_STATUS
    config = factory.LazyFunction(lambda: {"status": "contacted"})


class ActionExecutionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ActionExecution

    call = factory.SubFactory(CallLogFactory)
    action = factory.SubFactory(
        DispositionActionFactory, disposition__organization=factory.SelfAttribute("...call.organization")
    )
    action_type = factory.SelfAttribute("action.action_type")
    idempotency_key = factory.LazyAttribute(lambda e: f"{e.call.id}:{e.action.id}")


# --- Workflows ------------------------------------------------------------------------------


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lead

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Lead {n}")
    # +1 415 555 01xx: valid numbers (phonenumbers) in a range no one answers.
    phone = factory.Sequence(lambda n: f"+1415555{n % 10000:04d}")
    email = factory.Sequence(lambda n: f"lead{n}@example.com")


class WorkflowFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workflow

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Workflow {n}")


class WorkflowStepFactory(factory.django.DjangoModelFactory):
    """A step; webhook steps get their signing secret as saving one through the admin does."""

    class Meta:
        model = WorkflowStep

    workflow = factory.SubFactory(WorkflowFactory)
    position = factory.LazyAttribute(lambda step: step.workflow.steps.count() + 1)
    action_type = ActionType.UPDATE_LEAD
    config = factory.LazyAttribute(
        lambda step: {
            ActionType.CALL: {"agent_id": "agent_test", "from_number": "+14155550100"},
            ActionType.SMS: {"body": "Hi {name}", "from_number": "+14155550100"},
            ActionType.EMAIL: {"subject": "Hello {name}", "body": "Hi {name}"},
            ActionType.WAIT: {"minutes": 60},
            ActionType.WEBHOOK: {"url": "http://127.0.0.1:9/hook"},
            ActionType.UPDATE_LEAD: {"status": "contacted"},
        }.get(step.action_type, {})
    )

    @classmethod
    def _create(cls, model_class: type[WorkflowStep], *args: Any, **kwargs: Any) -> WorkflowStep:
        step = model_class(*args, **kwargs)
        step.signing_secret_ensure()
        step.save()
        return step


def workflow_with_steps(organization: Any, *action_types: str, **fields: Any) -> Workflow:
    """A workflow whose steps, at positions 1, 2, ..., have the given action types."""
    configs = {
        "update_lead": {"status": "contacted"},
        "call": {"agent_id": "agent-1"},
        "sms": {"body": "Hi {name}"},
        "email": {"subject": "Hello", "body": "Hi"},
        "wait": {"minutes": 5},
    }
    workflow = WorkflowFactory(organization=organization, **fields)
    for position, action_type in enumerate(action_types or ("update_lead",), start=1):
        WorkflowStepFactory(
            workflow=workflow, position=position, action_type=action_type, config=configs.get(action_type, {})
        )
    return workflow


class WorkflowRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkflowRun

    workflow = factory.SubFactory(WorkflowFactory)
    organization = factory.LazyAttribute(lambda run: run.workflow.organization)
    lead = factory.LazyAttribute(lambda run: LeadFactory(organization=run.workflow.organization))
    status = RunStatus.ACTIVE
    step_status = StepStatus.PENDING
    next_action_at = factory.LazyFunction(timezone.now)
    updated_at = factory.LazyFunction(timezone.now)


class StepExecutionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StepExecution

    run = factory.SubFactory(WorkflowRunFactory)
    position = 1
    action_type = ActionType.UPDATE_LEAD
    attempt = factory.Sequence(lambda n: n + 1)
    started_at = factory.LazyFunction(timezone.now)
    idempotency_key = factory.LazyAttribute(lambda ex: f"wf:{ex.run.id}:{ex.position}:{ex.attempt}")


class AlertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Alert

    condition = AlertCondition.DEAD_LETTERS
    organization = factory.SubFactory(OrganizationFactory)
    scope = factory.LazyAttribute(lambda a: f"org:{a.organization.pk}" if a.organization else "global")
    started_at = factory.LazyFunction(timezone.now)
    threshold = 10.0
    last_value = 11.0
    message = "11 dead letters in the last hour"


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


class DiagnosticFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Diagnostic

    kind = DiagnosticKind.ASSIGNEE_RULE_MISSING
    severity = DiagnosticSeverity.CRITICAL
    organization = factory.SubFactory(OrganizationFactory)
    scope = factory.LazyAttribute(lambda d: f"org:{d.organization.pk}" if d.organization else "global")
    subject = factory.Sequence(lambda n: f"csc@city-{n}")
    message = "No csc is assigned for location 'city'"
    fix = "Add an assignee rule for role 'csc' at location 'city'"
    link = "/admin/webhooks_app/assigneerule/add/"
    first_seen = factory.LazyFunction(timezone.now)
    last_seen = factory.LazyFunction(timezone.now)
