"""Call webhooks as the tests send them: Retell and Vapi sources, signed deliveries through the
real intake, and the leads and workflows a disposition acts on."""

from typing import Any

from django.test import Client

from tests.factories import SourceFactory
from tests.support.signing import encode, retell_headers
from webhooks_app.models import Organization, SigningScheme, Source, SourceKind
from workflows_app.models import ActionType, Lead, Workflow, WorkflowStep

RETELL_API_KEY = "key_0123456789abcdef0123456789ab"
VAPI_SECRET = "vapi-server-secret-0123456789"


def retell_source(organization: Organization, **fields: Any) -> Source:
    return SourceFactory(
        organization=organization,
        kind=SourceKind.RETELL,
        signing_scheme=SigningScheme.RETELL,
        signing_secrets=[RETELL_API_KEY],
        backoff_base_seconds=0.3,
        backoff_factor=1.0,
        **fields,
    )


def vapi_source(organization: Organization, **fields: Any) -> Source:
    return SourceFactory(
        organization=organization,
        kind=SourceKind.VAPI,
        signing_scheme=SigningScheme.VAPI_SECRET,
        signing_secrets=[VAPI_SECRET],
        backoff_base_seconds=0.3,
        backoff_factor=1.0,
        **fields,
    )


def deliver(client: Client, source: Source, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    """POST the payload to the source's intake, signed the way its provider signs unless
    `headers` says otherwise."""
    body = encode(payload)
    if headers is None:
        headers = (
            retell_headers(RETELL_API_KEY, body) if source.kind == SourceKind.RETELL else {"x-vapi-secret": VAPI_SECRET}
        )
    return client.post(f"/webhooks/{source.slug}/", data=body, content_type="application/json", headers=headers)


def accepted(response: Any) -> str:
    assert response.status_code == 202, response.content
    return str(response.json()["id"])


def lead_create(organization: Organization, name: str = "Dana Lee", phone: str = "+14155552671") -> Lead:
    return Lead.objects.create(organization=organization, name=name, phone=phone, email="dana@example.com")


def workflow_create(organization: Organization, name: str = "Nurture") -> Workflow:
    """A workflow whose runs stay open for an hour (a wait step first), so a test sees them open
    while the worker runs them."""
    workflow = Workflow.objects.create(organization=organization, name=name)
    WorkflowStep.objects.create(workflow=workflow, position=1, action_type=ActionType.WAIT, config={"minutes": 60})
    WorkflowStep.objects.create(
        workflow=workflow, position=2, action_type=ActionType.UPDATE_LEAD, config={"status": "contacted"}
    )
    return workflow
