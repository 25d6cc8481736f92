"""The one organization and source the run sends to, with the demo's templates and rules."""

from localdev import demo
from webhooks_app.models import ConnectorKind, Organization, SigningScheme, Source, SourceKind
from webhooks_app.models.sources import new_signing_secret, signing_secret_entries_for


def source_create() -> str:
    """Returns the source's signing secret."""
    organization = Organization.objects.create(slug="chaos", name="Chaos run")
    demo.templates_create(organization=organization)
    demo.assignee_rules_create(organization=organization)
    secret = new_signing_secret()
    Source.objects.create(
        organization=organization,
        slug="chaos",
        kind=SourceKind.CLIO,
        signing_scheme=SigningScheme.STANDARD_WEBHOOKS,
        signing_secret_entries=signing_secret_entries_for(secret),
        connector=ConnectorKind.LOCAL,
    )
    return secret
