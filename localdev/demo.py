"""The demo organization: a law firm whose matters moving to "consultation" create ten tasks.

Naples has no CSC (client services coordinator) on file, so its events fail task 6 with
ERR_ASSIGNEE_NO_CSC until someone adds the assignee rule: the seed's partial-failure case.
"""

from dataclasses import dataclass

from django.db import transaction

from webhooks_app.models import (
    AssigneeRule,
    ConnectorKind,
    Endpoint,
    Organization,
    SigningScheme,
    Source,
    SourceKind,
    TaskTemplate,
)
from webhooks_app.models.sources import new_signing_secret, signing_secret_entries_for
from webhooks_app.services.outbound.operations import endpoint_create

STAGE = "consultation"
EVENT_TYPE = "matter.stage_changed"

# (task number, title, assignee role, due in days)
CONSULTATION_TASKS = [
    (1, "Review Intake Questionnaire", "attorney", 1),
    (2, "Run Conflict Check", "paralegal", 1),
    (3, "Request Prior Records", "paralegal", 2),
    (4, "Prepare Engagement Letter", "attorney", 2),
    (5, "Open Matter Folder", "paralegal", 1),
    (6, "Send Initial Consultation Packet", "csc", 1),
    (7, "Draft Case Assessment", "attorney", 3),
    (8, "Schedule Follow-up Call", "paralegal", 5),
    (9, "Calendar Statute of Limitations", "attorney", 1),
    (10, "Set Up Billing", "paralegal", 2),
]

ASSIGNEE_RULES = [
    ("attorney", AssigneeRule.ANY_LOCATION, "attorney.jones"),
    ("paralegal", AssigneeRule.ANY_LOCATION, "paralegal.garcia"),
    ("csc", "miami", "csc.miller"),
    ("csc", "tampa", "csc.nguyen"),
]


@dataclass(frozen=True)
class DemoSetup:
    organization: Organization
    local_source: Source
    sandbox_source: Source


def templates_create(*, organization: Organization, stage: str = STAGE) -> None:
    for number, title, role, due in CONSULTATION_TASKS:
        TaskTemplate.objects.update_or_create(
            organization=organization,
            trigger_event_type=EVENT_TYPE,
            stage=stage,
            task_number=number,
            defaults={"title": title, "assignee_role": role, "due_offset_days": due},
        )


def assignee_rules_create(*, organization: Organization) -> None:
    for role, location, assignee in ASSIGNEE_RULES:
        AssigneeRule.objects.update_or_create(
            organization=organization, role=role, location=location, defaults={"assignee": assignee}
        )


@transaction.atomic
def demo_load(*, sandbox_url: str) -> DemoSetup:
    """Idempotent: running it again keeps existing rows and secrets."""
    organization, _ = Organization.objects.get_or_create(slug="demo-law", defaults={"name": "Demo Law Firm"})
    templates_create(organization=organization)
    assignee_rules_create(organization=organization)
    local, _ = Source.objects.get_or_create(
        slug="clio-demo",
        defaults={
            "organization": organization,
            "kind": SourceKind.CLIO,
            "signing_scheme": SigningScheme.STANDARD_WEBHOOKS,
            "signing_secret_entries": signing_secret_entries_for(new_signing_secret()),
            "connector": ConnectorKind.LOCAL,
        },
    )
    sandbox, created = Source.objects.get_or_create(
        slug="clio-sandbox",
        defaults={
            "organization": organization,
            "kind": SourceKind.CLIO,
            "signing_scheme": SigningScheme.STANDARD_WEBHOOKS,
            "signing_secret_entries": signing_secret_entries_for(new_signing_secret()),
            "connector": ConnectorKind.CLIO_HTTP,
            "connector_base_url": sandbox_url,
        },
    )
    if not created and sandbox.connector_base_url != sandbox_url:
        sandbox.connector_base_url = sandbox_url
        sandbox.save(update_fields=["connector_base_url"])
    return DemoSetup(organization=organization, local_source=local, sandbox_source=sandbox)


# The demo's notification endpoints: one receiver that works, one that fails each message twice
# before taking it (a short schedule, so the retries show within a minute).
DEMO_ENDPOINTS = [
    ("bookings", ["booking.created", "booking.approved", "booking.rejected"], [0, 300, 900, 2700]),
    ("flaky", ["booking.created", "booking.approved", "booking.rejected", "event.partial_failure"], [0, 10, 30, 90]),
]


def demo_endpoints(*, organization: Organization, base_url: str) -> list[Endpoint]:
    """Idempotent: an endpoint already there keeps its secret."""
    made = []
    for name, types, schedule in DEMO_ENDPOINTS:
        url = f"{base_url}/sandbox/receiver/{name}/"
        endpoint = Endpoint.objects.filter(organization=organization, url=url).first()
        if endpoint is None:
            endpoint = Endpoint(
                organization=organization, url=url, description=f"demo receiver ({name})", event_types=types,
                retry_schedule=schedule,
            )  # fmt: skip
            endpoint_create(endpoint=endpoint)
        made.append(endpoint)
    return made
