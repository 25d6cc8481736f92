"""Workflow delivery statistics in the seed-001 style, over the same windows as delivery stats
(ops_app.stats.stats_window): step attempts and how many steps succeeded, overall and by step
type, runs started in the window by status, and the runs waiting for a person now."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Max, Q
from django.utils import timezone

from ops_app.stats import STATS_RANGES, StatsRange, stats_window
from workflows_app.models import RunStatus, StepExecution, StepOutcome, WorkflowRun


@dataclass
class StepCounts:
    # A step is one (run, position) attempted in the window; it succeeded when one of its
    # attempts did. Attempts are every StepExecution row (the workflow's delivery log).
    steps: int = 0
    succeeded: int = 0
    attempts: int = 0

    @property
    def failed(self) -> int:
        return self.steps - self.succeeded

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.steps if self.steps else None

    @property
    def avg_attempts(self) -> float | None:
        return self.attempts / self.steps if self.steps else None


@dataclass
class WorkflowStats:
    time_range: StatsRange
    start: datetime
    end: datetime
    summary: StepCounts
    by_step_type: dict[str, StepCounts]
    runs_by_status: dict[str, int]
    needs_review: int
    generated_at: datetime
    runs_total: int = field(init=False)

    def __post_init__(self) -> None:
        self.runs_total = sum(self.runs_by_status.values())


def workflow_stats(*, organization_id: int | None, time_range: str, now: datetime | None = None) -> WorkflowStats:
    spec = STATS_RANGES[time_range]
    now = now or timezone.now()
    start, end = stats_window(spec, now)
    executions = StepExecution.objects.filter(started_at__gte=start, started_at__lt=end)
    runs = WorkflowRun.objects.all()
    if organization_id is not None:
        executions = executions.filter(run__organization_id=organization_id)
        runs = runs.filter(organization_id=organization_id)
    # One row per step (run, position): its attempts and whether one of them succeeded. The
    # type is the log's snapshot (Max: a step whose type was edited mid-run counts once).
    per_step = (
        executions.values("run_id", "position")
        .annotate(kind=Max("action_type"), n=Count("*"), ok=Count("id", filter=Q(outcome=StepOutcome.SUCCEEDED)))
        .order_by()
    )
    summary = StepCounts()
    by_type: dict[str, StepCounts] = defaultdict(StepCounts)
    for row in per_step:
        for counts in (summary, by_type[row["kind"]]):
            counts.steps += 1
            counts.attempts += row["n"]
            counts.succeeded += 1 if row["ok"] else 0
    started = runs.filter(created_at__gte=start, created_at__lt=end).values("status").annotate(n=Count("*")).order_by()
    by_status = dict.fromkeys((str(s) for s in RunStatus), 0)
    for status, n in started.values_list("status", "n"):
        by_status[status] = n
    return WorkflowStats(
        time_range=spec,
        start=start,
        end=end,
        summary=summary,
        by_step_type=dict(sorted(by_type.items())),
        runs_by_status=by_status,
        needs_review=runs.filter(status=RunStatus.NEEDS_REVIEW).count(),
        generated_at=now,
    )
