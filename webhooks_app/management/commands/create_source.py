"""Register a webhook source (and its organization, if new) with a fresh signing secret."""

import os
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import URLValidator, validate_slug
from django.db import IntegrityError, transaction

from webhooks_app.models import ConnectorKind, Organization, SigningScheme, Source, SourceKind
from webhooks_app.models.sources import signing_secret_entries_for, signing_secret_for_scheme

SLUG_MAX_LENGTH = 100


def _slug_check(value: str, option: str) -> None:
    try:
        validate_slug(value)
    except ValidationError:
        raise CommandError(f"{option} {value!r} is not a slug (letters, digits, '-' and '_' only)") from None
    if len(value) > SLUG_MAX_LENGTH:
        raise CommandError(f"{option} is longer than {SLUG_MAX_LENGTH} characters")


def _choice_check(value: str, choices: list[str], option: str) -> None:
    if value not in choices:
        raise CommandError(f"{option} {value!r} is not one of: {', '.join(choices)}")


class Command(BaseCommand):
    help = "Create a webhook source, print its signing secret and its intake URL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="organization slug; created (named the same) if missing")
        parser.add_argument("--slug", required=True, help="the source's URL part: /webhooks/<slug>/")
        parser.add_argument("--kind", required=True, help=f"one of {', '.join(SourceKind.values)}")
        parser.add_argument(
            "--scheme", default=SigningScheme.STANDARD_WEBHOOKS.value, help="|".join(SigningScheme.values)
        )
        parser.add_argument(
            "--secret-env",
            default="",
            help="environment variable holding the secret the provider signs with (retell: the API key)",
        )
        parser.add_argument("--connector", default=ConnectorKind.LOCAL.value, help="local|clio_http")
        parser.add_argument("--connector-url", default="", help="base URL of the API (clio_http only)")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="where the web process listens")

    def handle(self, *args: Any, **options: Any) -> None:
        org_slug, slug = options["org"], options["slug"]
        kind, scheme, connector = options["kind"], options["scheme"], options["connector"]
        connector_url: str = options["connector_url"]
        # Everything is checked before anything is written, so bad input creates nothing.
        _slug_check(org_slug, "--org")
        _slug_check(slug, "--slug")
        _choice_check(kind, SourceKind.values, "--kind")
        _choice_check(scheme, SigningScheme.values, "--scheme")
        _choice_check(connector, ConnectorKind.values, "--connector")
        if connector == ConnectorKind.CLIO_HTTP:
            try:
                URLValidator(schemes=["http", "https"])(connector_url)
            except ValidationError:
                raise CommandError("--connector clio_http needs --connector-url, an http(s) URL") from None
        elif connector_url:
            raise CommandError(f"--connector-url only applies to --connector {ConnectorKind.CLIO_HTTP.value}")
        # Retell signs with the account's API key, so that key is the secret; never on the command
        # line (shell history), only through the environment.
        given = os.environ.get(options["secret_env"], "") if options["secret_env"] else ""
        if options["secret_env"] and not given:
            raise CommandError(f"--secret-env {options['secret_env']}: that environment variable is empty or unset")
        if scheme == SigningScheme.RETELL and not given:
            raise CommandError("--scheme retell verifies with your Retell API key: pass --secret-env NAME")
        if Source.objects.filter(slug=slug).exists():
            raise CommandError(f"a source with slug {slug!r} already exists")

        # Shown once, below; stored only encrypted.
        secret = given or signing_secret_for_scheme(scheme)
        try:
            with transaction.atomic():
                organization, _ = Organization.objects.get_or_create(slug=org_slug, defaults={"name": org_slug})
                source = Source.objects.create(
                    organization=organization,
                    slug=slug,
                    kind=kind,
                    signing_scheme=scheme,
                    signing_secret_entries=signing_secret_entries_for(secret),
                    connector=connector,
                    connector_base_url=connector_url,
                )
        except IntegrityError:  # a concurrent create of the same slug won the race
            raise CommandError(f"a source with slug {slug!r} already exists") from None

        self.stdout.write(f"created source {source.slug} ({source.kind}) for organization {organization.slug}")
        self.stdout.write(f"  intake URL: {options['base_url'].rstrip('/')}/webhooks/{source.slug}/")
        if given:
            self.stdout.write(f"  signing secret: taken from ${options['secret_env']}")
        elif scheme == SigningScheme.STANDARD_WEBHOOKS:
            self.stdout.write(f"  signing secret (Standard Webhooks): {secret}")
        elif scheme == SigningScheme.VAPI_SECRET:
            self.stdout.write(f"  server secret (Vapi sends it in x-vapi-secret): {secret}")
        else:
            self.stdout.write(f"  signing secret (hex HMAC-SHA256 of the body in {source.signature_header}): {secret}")
