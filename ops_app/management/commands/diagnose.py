"""`manage.py diagnose [--organization slug] [--json]`: find configuration problems now (what
beat does every five minutes), then list the open ones, most severe first. Exit 1 when a
critical one is open, 0 otherwise, so CI or cron can act on it."""

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ops_app.diagnostics import diagnostics_evaluate, diagnostics_open
from ops_app.models import Diagnostic, DiagnosticSeverity
from webhooks_app.models import Organization


def _as_json(d: Diagnostic) -> dict[str, Any]:
    return {
        "id": d.pk,
        "kind": d.kind,
        "severity": d.severity,
        "organization": d.organization.slug if d.organization else None,
        "subject": d.subject,
        "message": d.message,
        "fix": d.fix,
        "link": d.link,
        "firstSeen": d.first_seen.isoformat(),
        "lastSeen": d.last_seen.isoformat(),
    }


class Command(BaseCommand):
    help = "Find configuration problems and list the open ones; exit 1 when a critical one is open."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organization", metavar="SLUG", help="only this organization's diagnostics")
        parser.add_argument("--json", action="store_true", help="print the open diagnostics as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = None
        if options["organization"]:
            organization = Organization.objects.filter(slug=options["organization"]).first()
            if organization is None:
                known = ", ".join(Organization.objects.order_by("slug").values_list("slug", flat=True)[:20])
                raise CommandError(f"no organization '{options['organization']}' (known: {known or 'none'})")
        result = diagnostics_evaluate()
        rows = list(diagnostics_open(organization_id=organization.pk if organization else None))
        if options["json"]:
            self.stdout.write(json.dumps({"diagnostics": [_as_json(d) for d in rows], "notes": result.notes}, indent=2))
        else:
            self._print(rows, result.notes)
        if any(d.severity == DiagnosticSeverity.CRITICAL for d in rows):
            sys.exit(1)

    def _print(self, rows: list[Diagnostic], notes: list[str]) -> None:
        for note in notes:
            self.stderr.write(f"note: {note}")
        if not rows:
            self.stdout.write("No open diagnostics.")
            return
        for d in rows:
            where = d.organization.slug if d.organization else "global"
            self.stdout.write(f"[{d.severity.upper()}] {d.get_kind_display()} ({where}): {d.message}")
            self.stdout.write(f"    fix: {d.fix}")
            if d.link:
                self.stdout.write(f"    at:  {d.link}")
        critical = sum(1 for d in rows if d.severity == DiagnosticSeverity.CRITICAL)
        self.stdout.write(f"{len(rows)} open, {critical} critical.")
