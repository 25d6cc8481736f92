"""The demo's outreach side: leads, two workflows that between them use every failure strategy,
and dispositions whose actions start and stop them.

The sandbox providers (localdev.sandbox_providers) pick their behaviour by the lead's phone's
last digit: 7 is down for good, 3 fails twice and then works, anything else works. So the leads
below end up, once the workers have run, in every state a run can be in.
"""

from dataclasses import dataclass

from django.db import transaction

from webhooks_app.models import Organization
from workflows_app.models import (
    ActionType,
    Disposition,
    DispositionAction,
    DispositionActionType,
    FailureStrategy,
    Lead,
    Workflow,
    WorkflowStep,
)

# (name, phone, email): the last digit of the phone scripts the sandbox providers.
LEADS = [
    ("Ada Lovelace", "+14155552671", "ada@example.com"),  # everything works: completed
    ("Grace Hopper", "+14155552673", "grace@example.com"),  # flaky: transient retries, completed
    ("Alan Turing", "+14155552677", "alan@example.com"),  # providers down: skipped, failed, review
    ("Edsger Dijkstra", "+14155552681", ""),  # no email: the email step is refused before start
    ("Barbara Liskov", "555-0199", "barbara@example.com"),  # invalid phone: blocked before start
]

# (position, name, action, config, strategy, max_retries)
NEW_LEAD_STEPS = [
    (1, "Welcome text", ActionType.SMS, {"body": "Hi {name}, thanks for reaching out to Demo Law."}, "retry", 3),
    (2, "Intro call", ActionType.CALL, {"agent_id": "agent_demo_intake"}, "skip", 3),
    (3, "Give them a minute", ActionType.WAIT, {"minutes": 1}, "stop", 3),
    (4, "Follow-up email", ActionType.EMAIL, {"subject": "Your consultation", "body": "Hi {name}, ..."}, "continue", 3),
    (5, "Mark contacted", ActionType.UPDATE_LEAD, {"status": "contacted"}, "stop", 3),
]
CALLBACK_STEPS = [
    (1, "Callback", ActionType.CALL, {"agent_id": "agent_demo_callback"}, "stop", 3),
    (2, "Mark qualified", ActionType.UPDATE_LEAD, {"status": "qualified"}, "stop", 3),
]

NEW_LEAD = "New lead outreach"
CALLBACK = "Requested callback"


@dataclass(frozen=True)
class OutreachSetup:
    leads: list[Lead]
    new_lead: Workflow
    callback: Workflow


def _workflow(organization: Organization, name: str, description: str, steps: list[tuple]) -> Workflow:  # type: ignore[type-arg]
    workflow, _ = Workflow.objects.get_or_create(
        organization=organization, name=name, defaults={"description": description}
    )
    for position, label, action, config, strategy, max_retries in steps:
        WorkflowStep.objects.update_or_create(
            workflow=workflow,
            position=position,
            defaults={
                "name": label,
                "action_type": action,
                "config": config,
                "failure_strategy": FailureStrategy(strategy),
                "max_retries": max_retries,
            },
        )
    return workflow


@transaction.atomic
def outreach_load(*, organization: Organization) -> OutreachSetup:
    """Idempotent, like demo_load."""
    leads = []
    for name, phone, email in LEADS:
        lead, _ = Lead.objects.get_or_create(
            organization=organization, name=name, defaults={"phone": phone, "email": email}
        )
        leads.append(lead)
    new_lead = _workflow(organization, NEW_LEAD, "Text, call, wait, email and mark the lead contacted.", NEW_LEAD_STEPS)
    callback = _workflow(organization, CALLBACK, "Call back a lead who asked for it.", CALLBACK_STEPS)
    _dispositions(organization, callback)
    return OutreachSetup(leads=leads, new_lead=new_lead, callback=callback)


def _dispositions(organization: Organization, callback: Workflow) -> None:
    routes: dict[str, list[tuple[str, dict[str, object]]]] = {
        "Interested": [
            (DispositionActionType.UPDATE_LEAD_STATUS, {"status": "qualified"}),
            (DispositionActionType.STOP_WORKFLOW, {"workflow_id": "all"}),
        ],
        "Callback Requested": [
            (DispositionActionType.SCHEDULE_CALLBACK, {"delay_minutes": 60}),
            (DispositionActionType.START_WORKFLOW, {"workflow_id": callback.pk}),
        ],
        "Not Interested": [(DispositionActionType.UPDATE_LEAD_STATUS, {"status": "unqualified"})],
        "Voicemail": [(DispositionActionType.SEND_SMS, {"body": "Sorry we missed you, {name}."})],
        # The analysis fallback's dispositions (seed 004): a person listens to the recording.
        "Connected - Manual Review Needed": [(DispositionActionType.NOTIFY, {"message": "Review this call"})],
        "No Answer": [(DispositionActionType.SEND_SMS, {"body": "We tried to reach you, {name}."})],
        # Seed scenario 4 in the demo: the first action points at a workflow that does not exist,
        # fails and is tracked; the second still runs.
        "Wrong Number": [
            (DispositionActionType.START_WORKFLOW, {"workflow_id": 999999}),
            (DispositionActionType.UPDATE_LEAD_STATUS, {"status": "do_not_contact"}),
        ],
    }
    for name, actions in routes.items():
        disposition, created = Disposition.objects.get_or_create(organization=organization, name=name)
        if not created:
            continue
        for position, (action_type, config) in enumerate(actions, start=1):
            DispositionAction.objects.create(
                disposition=disposition, position=position, action_type=action_type, config=config
            )
