"""Load the demo law firm (templates, assignee rules, two Clio sources; leads, workflows,
dispositions, a Retell and a Vapi source) and show its secrets."""

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import URLValidator

from localdev.demo import demo_endpoints, demo_load
from localdev.demo_workflows import outreach_load
from webhooks_app.models import SigningScheme, Source

DEFAULT_SANDBOX_URL = "http://127.0.0.1:8000/sandbox/clio"


class Command(BaseCommand):
    help = "Create the demo organization and its sources, or keep them if they exist (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--sandbox-url",
            default=DEFAULT_SANDBOX_URL,
            help=f"base URL of the fake Clio the clio-sandbox source calls (default {DEFAULT_SANDBOX_URL})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sandbox_url: str = options["sandbox_url"].rstrip("/")
        try:
            URLValidator(schemes=["http", "https"])(sandbox_url)
        except ValidationError:
            raise CommandError(f"--sandbox-url {sandbox_url!r} is not an http(s) URL") from None
        setup = demo_load(sandbox_url=sandbox_url)
        self.stdout.write(f"demo organization: {setup.organization.name} ({setup.organization.slug})")
        outreach = outreach_load(organization=setup.organization, retell_api_key=settings.RETELL_API_KEY)
        for source in (setup.local_source, setup.sandbox_source, outreach.retell_source, outreach.vapi_source):
            self.stdout.write(_describe(source))
        base_url = sandbox_url.rsplit("/sandbox/", 1)[0]
        for endpoint in demo_endpoints(organization=setup.organization, base_url=base_url):
            self.stdout.write(f"  notifications -> {endpoint.url}  ({', '.join(endpoint.event_types)})")
        self.stdout.write(
            f"  {len(outreach.leads)} leads; workflows {outreach.new_lead.name!r} and {outreach.callback.name!r}"
        )


def _describe(source: Source) -> str:
    target = source.connector
    if source.connector_base_url:
        target += f" -> {source.connector_base_url}"
    if source.signing_scheme == SigningScheme.RETELL:
        # The Retell API key: a credential beyond this source, never printed.
        return f"  /webhooks/{source.slug}/  [{target}]  secret: the Retell API key (RETELL_API_KEY)"
    secret = source.signing_secrets[0] if source.signing_secrets else "(none)"
    return f"  /webhooks/{source.slug}/  [{target}]  secret {secret}"
