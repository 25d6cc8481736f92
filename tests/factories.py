import factory

from webhooks_app.models import ConnectorKind, Organization, SigningScheme, Source, SourceKind
from webhooks_app.models.sources import new_signing_secret


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
