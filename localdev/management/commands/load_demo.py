"""Load the demo law firm (templates, assignee rules, two Clio sources) and show its secrets."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import URLValidator

from localdev.demo import demo_endpoints, demo_load
from webhooks_app.models import Source

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
        for source in (setup.local_source, setup.sandbox_source):
            self.stdout.write(_describe(source))
        base_url = sandbox_url.rsplit("/sandbox/", 1)[0]
        for endpoint in demo_endpoints(organization=setup.organization, base_url=base_url):
            self.stdout.write(f"  notifications -> {endpoint.url}  ({', '.join(endpoint.event_types)})")


def _describe(source: Source) -> str:
    target = source.connector
    if source.connector_base_url:
        target += f" -> {source.connector_base_url}"
    secret = source.signing_secrets[0] if source.signing_secrets else "(none)"
    return f"  /webhooks/{source.slug}/  [{target}]  secret {secret}"
