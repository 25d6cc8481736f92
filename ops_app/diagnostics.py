"""Diagnostics (seed 004 detectAndFixIssues): beat, and `manage.py diagnose` on demand, run the
detectors (ops_app.diagnostic_detectors); a problem found for the first time opens a Diagnostic,
one found again moves its last_seen on, and an open one no longer found is resolved: its cause
is gone.

Safe with two evaluations at once: the unique constraint on open rows lets only one insert open
a problem (the other refreshes that row), and the conditional UPDATE that resolves it lets only
one close it.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from ops_app.diagnostic_detectors import DETECTORS, Finding, unique
from ops_app.errors import record_error
from ops_app.models import Diagnostic, DiagnosticKind
from ops_app.models.alerts import scope_key
from ops_app.models.diagnostics import DiagnosticQuerySet

logger = logging.getLogger(__name__)


@dataclass
class Diagnosis:
    opened: list[Diagnostic] = field(default_factory=list)
    refreshed: int = 0
    resolved: list[Diagnostic] = field(default_factory=list)
    # Detectors that failed this time (their kinds' open rows are left as they are).
    notes: list[str] = field(default_factory=list)


def findings_detect(*, now: datetime) -> tuple[list[Finding], set[DiagnosticKind], list[str]]:
    """Every finding, the kinds whose detector ran, and notes on those that failed. A detector's
    failure (Redis unreachable, a query error) says nothing about its problems: unknown, not
    fixed."""
    findings: list[Finding] = []
    measured: set[DiagnosticKind] = set()
    notes: list[str] = []
    for kind, detector in DETECTORS:
        try:
            # A savepoint: a failed query must not spoil the caller's transaction.
            with transaction.atomic():
                findings += detector(now=now)
            measured.add(kind)
        except Exception as exc:  # noqa: BLE001 - one detector's failure must not stop the others
            notes.append(f"{kind} not checked: {type(exc).__name__}: {exc}")
            logger.warning("diagnostics: %s not checked (%s: %s)", kind, type(exc).__name__, exc)
            # An error record too: a detector failing every five minutes is itself a problem.
            record_error(
                function=f"{detector.__module__}.{detector.__name__}",
                action="diagnose",
                message=f"{kind} not checked: {type(exc).__name__}: {exc}",
                severity="warning",
                now=now,
            )
    return unique(findings), measured, notes


def _wording(finding: Finding) -> dict[str, str]:
    return {"severity": finding.severity, "message": finding.message, "fix": finding.fix, "link": finding.link}


def _open(finding: Finding, now: datetime) -> Diagnostic | None:
    try:
        with transaction.atomic():
            return Diagnostic.objects.create(
                kind=finding.kind,
                organization_id=finding.organization_id,
                scope=scope_key(finding.organization_id),
                subject=finding.subject[:200],
                first_seen=now,
                last_seen=now,
                **_wording(finding),
            )
    except IntegrityError:
        # Another evaluation opened it a moment ago: this one saw it too.
        kind, scope, subject = finding.key
        Diagnostic.objects.open().filter(kind=kind, scope=scope, subject=subject).update(
            last_seen=now, **_wording(finding)
        )
        return None


def diagnostics_evaluate(*, now: datetime | None = None) -> Diagnosis:
    """Detect, open, refresh and resolve diagnostics."""
    now = now or timezone.now()
    findings, measured, notes = findings_detect(now=now)
    result = Diagnosis(notes=notes)
    open_rows = {(d.kind, d.scope, d.subject): d for d in Diagnostic.objects.open()}
    for finding in findings:
        row = open_rows.pop(finding.key, None)
        if row is None:
            opened = _open(finding, now)
            if opened is not None:
                result.opened.append(opened)
        elif Diagnostic.objects.refresh(diagnostic_id=row.pk, now=now, **_wording(finding)):
            result.refreshed += 1
    for row in open_rows.values():
        if row.kind in measured and Diagnostic.objects.resolve(diagnostic_id=row.pk, now=now):
            row.resolved_at = now
            result.resolved.append(row)
    if result.opened or result.resolved:
        logger.info(
            "diagnostics: %s opened, %s resolved, %s still open",
            len(result.opened),
            len(result.resolved),
            result.refreshed,
        )
    return result


def diagnostics_open(*, organization_id: int | None = None) -> DiagnosticQuerySet:
    """Open diagnostics, most severe first; one organization's when given."""
    rows = Diagnostic.objects.open().select_related("organization")
    if organization_id is not None:
        rows = rows.filter(organization_id=organization_id)
    return rows.most_severe_first()
