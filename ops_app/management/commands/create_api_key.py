"""`manage.py create_api_key --org ORG [--name NAME]`: make an API key and print it, once."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops_app.models import ApiKey
from webhooks_app.models import Organization


class Command(BaseCommand):
    help = "Create an API key for an organization and print it. Only its hash is stored: copy it now."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="The organization's slug")
        parser.add_argument("--name", default="API key", help="What will use the key, e.g. 'Grafana'")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.filter(slug=options["org"]).first()
        if organization is None:
            raise CommandError(f"no organization with slug '{options['org']}'")
        key, raw_key = ApiKey.issue(organization=organization, name=options["name"])
        # The key alone on stdout, so `KEY=$(manage.py create_api_key ...)` works; the rest on stderr.
        self.stderr.write(f"API key {key.prefix} for {organization.slug} ({key.name}); it will not be shown again:")
        self.stdout.write(raw_key)
