"""The demo's outreach side: leads, two workflows that between them use every failure strategy,
dispositions whose actions start and stop them, and the Retell and Vapi sources their call
webhooks arrive through.

The sandbox providers (localdev.sandbox_providers) pick their behaviour by the lead's phone's
last digit: 7 is down for good, 9 has its calls fail, 3 fails twice and then works, anything
else works. So the leads below end up, once the workers have run, in every state a run can be in.

So that all of it shows within a minute or two, the demo organization retries a failed step
after one minute at any hour (its business hours are the whole week); the production defaults
stay the seed's (one hour, 9:00-17:00 Monday to Friday).
"""

import secrets
from dataclasses import dataclass
from datetime import time

from django.db import transaction

from webhooks_app.models import Organization, SigningScheme, Source, SourceKind
from webhooks_app.models.sources import signing_secret_entries_for
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
    ("Alan Turing", "+14155552677", "alan@example.com"),  # providers down: retrying, then review
    ("Katherine Johnson", "+14155552679", "katherine@example.com"),  # calls fail: the call step skipped
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
# The demo's retry delay of every step, in minutes (the model's default is the seed's 60).
DEMO_RETRY_DELAY_MINUTES = 1

RETELL_SOURCE = "retell-demo"
VAPI_SOURCE = "vapi-demo"


@dataclass(frozen=True)
class OutreachSetup:
    leads: list[Lead]
    new_lead: Workflow
    callback: Workflow
    retell_source: Source
    vapi_source: Source


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
                "retry_delay_minutes": DEMO_RETRY_DELAY_MINUTES,
            },
        )
    return workflow


def _around_the_clock(organization: Organization) -> None:
    organization.business_hours_start = time(0, 0)
    organization.business_hours_end = time(23, 59, 59, 999999)
    organization.business_days = list(range(7))
    organization.full_clean()
    organization.save(update_fields=["business_hours_start", "business_hours_end", "business_days"])


def _call_sources(organization: Organization, retell_api_key: str) -> tuple[Source, Source]:
    # Retell signs its webhooks with the account's API key, so the key the call steps use is
    # the source's secret; Vapi sends its server secret as it is.
    retell, _ = Source.objects.get_or_create(
        slug=RETELL_SOURCE,
        defaults={
            "organization": organization,
            "kind": SourceKind.RETELL,
            "signing_scheme": SigningScheme.RETELL,
            "signing_secret_entries": signing_secret_entries_for(retell_api_key or secrets.token_hex(32)),
        },
    )
    vapi, _ = Source.objects.get_or_create(
        slug=VAPI_SOURCE,
        defaults={
            "organization": organization,
            "kind": SourceKind.VAPI,
            "signing_scheme": SigningScheme.VAPI_SECRET,
            "signing_secret_entries": signing_secret_entries_for(secrets.token_hex(32)),
        },
    )
    return retell, vapi


@transaction.atomic
def outreach_load(*, organization: Organization, retell_api_key: str = "") -> OutreachSetup:
    """Idempotent, like demo_load. `retell_api_key` (the key the call steps send) becomes the
    Retell source's secret when the source is created; without one it gets a key of its own."""
    _around_the_clock(organization)
    leads = []
    for name, phone, email in LEADS:
        lead, _ = Lead.objects.get_or_create(
            organization=organization, name=name, defaults={"phone": phone, "email": email}
        )
        leads.append(lead)
    new_lead = _workflow(organization, NEW_LEAD, "Text, call, wait, email and mark the lead contacted.", NEW_LEAD_STEPS)
    callback = _workflow(organization, CALLBACK, "Call back a lead who asked for it.", CALLBACK_STEPS)
    _dispositions(organization, callback)
    retell, vapi = _call_sources(organization, retell_api_key)
    return OutreachSetup(leads=leads, new_lead=new_lead, callback=callback, retell_source=retell, vapi_source=vapi)


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
