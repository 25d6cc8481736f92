"""The machine header and the results table (Markdown, so it pastes into docs/performance.md)."""

import datetime
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The bars the platform holds today. Issue 11 asks for more (intake 0.25 of the no-op view with
# p99 under 4x its p99 and 1.5x the default Django peer; end to end 0.35): not met yet, so they
# are printed as targets beside the figures (docs/performance.md), not failed as bars.
INTAKE_RATIO_BAR = 0.12
E2E_RATIO_BAR = 0.15
INTAKE_RATIO_TARGET = 0.25
INTAKE_P99_TARGET = 4.0
INTAKE_PEER_RATIO_TARGET = 1.5
E2E_RATIO_TARGET = 0.35
# Intake while retention purges 1,000,000 expired events, against intake without it.
RETENTION_RATIO_BAR = 0.8
# Due workflow runs (one update_lead step) executed, against no-op tasks on the same worker.
WORKFLOWS_RATIO_BAR = 0.25
# Notifications delivered to a local receiver, against raw httpx POSTs of the same signed body
# from the same worker command.
OUTBOUND_RATIO_BAR = 0.3
# Booking inserts with one subscribed endpoint (the outbox row written), against without.
OUTBOX_COST_BAR = 0.7
WORKER_RSS_BAR_MB = 200.0
# With 1,000,000 events (bench/million.py): median latency of one sequential GET.
ADMIN_PAGE_BAR_MS = 500.0
API_READ_BAR_MS = 100.0


@dataclass(frozen=True)
class Row:
    measure: str
    mendhook: str
    baseline: str
    ratio: str
    bar: str
    result: str  # PASS, FAIL, or "" for figures without a bar


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> list[str]:
    date = subprocess.run(["date"], capture_output=True, text=True, check=False).stdout.strip()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"date: {date or datetime.datetime.now(datetime.UTC).isoformat()}",
        f"nproc: {os.cpu_count()}  arch: {platform.machine()}  CPU: {cpu_model()}",
        f"python: {platform.python_version()}  load average at start: {load}",
    ]


def bar_row(measure: str, mendhook: float, baseline: float, unit: str, bar: float, digits: int = 1) -> Row:
    ratio = mendhook / baseline if baseline else 0.0
    return Row(
        measure=measure,
        mendhook=f"{mendhook:.{digits}f} {unit}",
        baseline=f"{baseline:.{digits}f} {unit}",
        ratio=f"{ratio:.3f}",
        bar=f">= {bar:g}",
        result="PASS" if ratio >= bar else "FAIL",
    )


def info_row(measure: str, mendhook: float, baseline: float, unit: str, digits: int = 1) -> Row:
    ratio = mendhook / baseline if baseline else 0.0
    return Row(
        measure=measure,
        mendhook=f"{mendhook:.{digits}f} {unit}",
        baseline=f"{baseline:.{digits}f} {unit}",
        ratio=f"{ratio:.2f}",
        bar="-",
        result="",
    )


def rss_row(measure: str, mendhook_mb: float, baseline_mb: float) -> Row:
    return Row(
        measure=measure,
        mendhook=f"{mendhook_mb:.1f} MB",
        baseline=f"{baseline_mb:.1f} MB",
        ratio=f"{mendhook_mb / baseline_mb:.2f}" if baseline_mb else "-",
        bar=f"< {WORKER_RSS_BAR_MB:g} MB",
        result="PASS" if mendhook_mb < WORKER_RSS_BAR_MB else "FAIL",
    )


def latency_row(
    measure: str,
    median_ms: float,
    p95_ms: float,
    baseline_median_ms: float,
    baseline_p95_ms: float,
    bar_ms: float | None,
) -> Row:
    """Median (and p95) latency beside the no-op view's; the bar, if any, is on the median."""
    return Row(
        measure=measure,
        mendhook=f"{median_ms:.1f} ms (p95 {p95_ms:.1f})",
        baseline=f"{baseline_median_ms:.1f} ms (p95 {baseline_p95_ms:.1f})",
        ratio=f"{median_ms / baseline_median_ms:.1f}" if baseline_median_ms else "-",
        bar=f"< {bar_ms:g} ms" if bar_ms is not None else "-",
        result=("PASS" if median_ms < bar_ms else "FAIL") if bar_ms is not None else "",
    )


def table(rows: list[Row]) -> str:
    header = Row("measure", "mendhook", "baseline", "ratio", "bar", "result")
    cells = [[r.measure, r.mendhook, r.baseline, r.ratio, r.bar, r.result] for r in [header, *rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(6)]
    align_right = [False, True, True, True, False, False]

    def line(row: list[str]) -> str:
        parts = [c.rjust(w) if right else c.ljust(w) for c, w, right in zip(row, widths, align_right, strict=True)]
        return "| " + " | ".join(parts) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if right else ("-" * (w + 2)) for w, right in zip(widths, align_right, strict=True)
        )
        + "|"
    )
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])
