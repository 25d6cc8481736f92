"""Factories for the workflows models the operator tests need (leads, workflows with steps, runs,
step executions, calls and their action executions). The integrator may fold these into
tests/factories.py beside the engine's."""

from typing import Any

import factory
from django.utils import timezone

from tests.factories import OrganizationFactory
from workflows_app.models import (
    ActionExecution,
    ActionExecutionStatus,
    CallLog,
    CallProvider,
    Disposition,
    DispositionAction,
    DispositionActionType,
    Lead,
    RunStatus,
    StepExecution,
    StepOutcome,
    StepStatus,
    Workflow,
    WorkflowRun,
    WorkflowStep,
)


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lead

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Lead {n}")
    phone = "+14155552671"
    email = factory.Sequence(lambda n: f"lead{n}@example.com")


class WorkflowFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workflow

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Workflow {n}")


class WorkflowStepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkflowStep

    workflow = factory.SubFactory(WorkflowFactory)
    position = factory.Sequence(lambda n: n + 1)
    action_type = "update_lead"
    config = factory.LazyFunction(lambda: {"status": "contacted"})


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
    lead = factory.LazyAttribute(lambda o: LeadFactory(organization=o.workflow.organization))
    organization = factory.LazyAttribute(lambda o: o.workflow.organization)
    status = RunStatus.ACTIVE
    step_status = StepStatus.PENDING
    current_position = 1
    next_action_at = factory.LazyFunction(timezone.now)
    updated_at = factory.LazyFunction(timezone.now)


class StepExecutionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StepExecution

    run = factory.SubFactory(WorkflowRunFactory)
    position = 1
    action_type = "update_lead"
    attempt = factory.Sequence(lambda n: n + 1)
    started_at = factory.LazyFunction(timezone.now)
    outcome = StepOutcome.SUCCEEDED
    idempotency_key = factory.Sequence(lambda n: f"step-key-{n}")


class CallLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CallLog

    organization = factory.SubFactory(OrganizationFactory)
    provider = CallProvider.RETELL
    provider_call_id = factory.Sequence(lambda n: f"call_{n}")
    duration_seconds = 42.0
    disposition = "Interested"


class DispositionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Disposition

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Disposition {n}")


class DispositionActionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DispositionAction

    disposition = factory.SubFactory(DispositionFactory)
    action_type = DispositionActionType.NOTIFY


class ActionExecutionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ActionExecution

    call = factory.SubFactory(CallLogFactory)
    action_type = DispositionActionType.NOTIFY
    status = ActionExecutionStatus.SUCCEEDED
    success = True
    idempotency_key = factory.Sequence(lambda n: f"action-key-{n}")
