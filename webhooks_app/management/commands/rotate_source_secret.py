"""Rotate a source's signing secret: print the new one once; the old ones expire after a grace."""

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webhooks_app.models import Source
from webhooks_app.services.sources import signing_secret_grace, source_secret_rotate


class Command(BaseCommand):
    help = "Make a new signing secret for a source and print it once; the current ones keep verifying for a grace."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", required=True, help="the source's slug")
        parser.add_argument(
            "--grace-hours",
            type=float,
            default=None,
            help="how long the current secrets keep verifying (default SIGNING_SECRET_GRACE_HOURS, 24)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug: str = options["source"]
        hours: float | None = options["grace_hours"]
        if hours is not None and not 0 <= hours <= 24 * 365:
            raise CommandError("--grace-hours must be between 0 and 8760")
        source_id = Source.objects.filter(slug=slug).values_list("id", flat=True).first()
        if source_id is None:
            raise CommandError(f"no source with slug {slug!r}")
        grace = signing_secret_grace() if hours is None else timedelta(hours=hours)
        secret = source_secret_rotate(source_id=source_id, grace=grace)
        self.stdout.write(f"rotated the signing secret of {slug}; the previous ones expire in {grace}")
        self.stdout.write(f"  new signing secret: {secret}")
