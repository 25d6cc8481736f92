"""The workflows phase: due runs of a one-step update_lead workflow, handed to a real worker by
the product's dispatcher (workflows_app.services.dispatch.runs_dispatch_due, called every 2 s as
beat calls it), beside the no-op Celery task rate of the same worker command.

Two figures of latency, both StepExecution.started_at - the run's next_action_at:
- burst: every run due at the same instant, so it is mostly the time the run waited in the
  queue behind the others;
- paced: runs falling due one after another at half the measured run rate, so it is what the
  dispatcher itself adds (its 2 s cadence) plus the worker's pick-up.

Django is set up by __main__ before this module is imported.
"""

import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count
from django.utils import timezone

from bench import infra
from bench.infra import BenchFailure
from bench.phases import Options, WorkerFigures, cpu_seconds, noop_baseline, reset
from webhooks_app.models import Organization
from workflows_app.models import (
    ActionType,
    Lead,
    LeadStatus,
    RunStatus,
    StepExecution,
    StepOutcome,
    StepStatus,
    Workflow,
    WorkflowRun,
    WorkflowStep,
)
from workflows_app.services.dispatch import runs_dispatch_due

# As config/beat.py schedules dispatch-due-runs.
DISPATCH_INTERVAL_SECONDS = 2.0
PACED_RUNS = 1000
FAR_FUTURE = timedelta(days=365)


@dataclass(frozen=True)
class WorkflowFigures:
    count: int
    seconds: float
    rate: float
    burst_p50_ms: float
    burst_p99_ms: float
    paced_count: int
    paced_p50_ms: float
    paced_p99_ms: float
    dispatch_calls: int
    cpu_ms_per_run: float


def seed(count: int, *, label: str, organization: Organization | None = None) -> tuple[Workflow, Organization]:
    """`count` active runs at step 1 of a one-step update_lead workflow, not yet due."""
    if organization is None:
        organization = Organization.objects.create(slug="bench-wf", name="Bench Workflows")
    workflow = Workflow.objects.create(organization=organization, name=f"bench {label}")
    WorkflowStep.objects.create(
        workflow=workflow, position=1, name="mark contacted", action_type=ActionType.UPDATE_LEAD,
        config={"status": "contacted"},
    )  # fmt: skip
    leads = Lead.objects.bulk_create(
        [Lead(organization=organization, name=f"{label} lead {n}") for n in range(count)], batch_size=2000
    )
    later = timezone.now() + FAR_FUTURE
    WorkflowRun.objects.bulk_create(
        [
            WorkflowRun(
                organization=organization,
                workflow=workflow,
                lead=lead,
                current_position=1,
                status=RunStatus.ACTIVE,
                step_status=StepStatus.PENDING,
                next_action_at=later,
                started_by="bench",
                updated_at=timezone.now(),
            )
            for lead in leads
        ],
        batch_size=2000,
    )
    return workflow, organization


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latencies_ms(workflow: Workflow, due: dict[uuid.UUID, datetime]) -> list[float]:
    """started_at of each run's first attempt - the next_action_at the bench gave the run (a
    completed run's next_action_at is cleared, so the bench keeps its own record)."""
    rows = StepExecution.objects.filter(run__workflow=workflow, attempt=1).values_list("run_id", "started_at")
    return [(started - due[run_id]).total_seconds() * 1000 for run_id, started in rows]


def run_until_done(workflow: Workflow, count: int, worker: infra.ManagedProcess, timeout: float) -> tuple[float, int]:
    """Call the dispatcher every DISPATCH_INTERVAL_SECONDS until `count` runs of `workflow`
    completed. Returns (seconds from the first dispatch, dispatcher calls)."""
    completed = WorkflowRun.objects.filter(workflow=workflow, status=RunStatus.COMPLETED)
    started = time.perf_counter()
    next_dispatch = started
    calls = 0
    while True:
        now = time.perf_counter()
        if now >= next_dispatch:
            runs_dispatch_due()
            calls += 1
            next_dispatch += DISPATCH_INTERVAL_SECONDS
        if completed.count() >= count:
            return time.perf_counter() - started, calls
        if not worker.alive():
            raise BenchFailure(f"workflow worker exited:\n{worker.output()[-3000:]}")
        if now - started > timeout:
            raise BenchFailure(f"{completed.count()} of {count} runs completed after {timeout:.0f}s")
        failed = WorkflowRun.objects.filter(workflow=workflow).exclude(status=RunStatus.ACTIVE)
        failed = failed.exclude(status=RunStatus.COMPLETED)
        if failed.exists():
            raise BenchFailure(f"runs did not complete: {list(failed.values_list('status', 'failure_reason')[:5])}")
        time.sleep(0.05)


def verify(workflow: Workflow, count: int) -> str:
    runs = dict(
        WorkflowRun.objects.filter(workflow=workflow)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    executions = StepExecution.objects.filter(run__workflow=workflow)
    succeeded = executions.filter(outcome=StepOutcome.SUCCEEDED, attempt=1).count()
    contacted = Lead.objects.filter(workflow_runs__workflow=workflow, status=LeadStatus.CONTACTED).count()
    if (
        runs != {RunStatus.COMPLETED.value: count}
        or executions.count() != count
        or succeeded != count
        or contacted != count
    ):
        raise BenchFailure(
            f"workflows: runs by status {runs}, {executions.count()} step executions ({succeeded} succeeded "
            f"first time), {contacted} leads contacted; want {count} of each"
        )
    return f"workflows: {count} runs completed, one succeeded step execution each, {contacted} leads contacted"


def workflows_phase(options: Options, log: Callable[[str], None]) -> tuple[WorkflowFigures, WorkerFigures, list[str]]:
    count = options.events
    timeout = max(600.0, count / 10)
    reset()
    log(f"workflows: seeding {count} runs of a one-step update_lead workflow (bulk, not yet due)")
    burst, organization = seed(count, label="burst")
    worker = infra.start_worker("workflows")
    try:
        cpu_before = sum(cpu_seconds(pid) for pid in [worker.pid, *worker.children()])
        # All due now, as if a campaign had started them at once.
        now = timezone.now()
        WorkflowRun.objects.filter(workflow=burst).update(next_action_at=now)
        due = dict.fromkeys(WorkflowRun.objects.filter(workflow=burst).values_list("id", flat=True), now)
        log(f"  {count} runs due now; dispatching every {DISPATCH_INTERVAL_SECONDS:g}s as beat does")
        seconds, calls = run_until_done(burst, count, worker, timeout)
        cpu = sum(cpu_seconds(pid) for pid in [worker.pid, *worker.children()]) - cpu_before
        checks = [verify(burst, count)]
        burst_ms = latencies_ms(burst, due)
        rate = count / seconds

        paced_count = min(PACED_RUNS, count)
        paced, _ = seed(paced_count, label="paced", organization=organization)
        spacing = 2.0 / rate  # half the measured rate: the worker keeps up
        start = timezone.now() + timedelta(seconds=1)
        log(f"  paced: {paced_count} runs falling due every {spacing * 1000:.1f} ms")
        pending = list(WorkflowRun.objects.filter(workflow=paced).order_by("id").values_list("id", flat=True))
        for n, run_id in enumerate(pending):
            due[run_id] = start + timedelta(seconds=n * spacing)
            WorkflowRun.objects.filter(id=run_id).update(next_action_at=due[run_id])
        run_until_done(paced, paced_count, worker, timeout)
        checks.append(verify(paced, paced_count).replace("workflows:", "workflows (paced):"))
        paced_ms = latencies_ms(paced, due)
    finally:
        worker.stop()
    infra.redis_clean()
    figures = WorkflowFigures(
        count=count,
        seconds=seconds,
        rate=rate,
        burst_p50_ms=statistics.median(burst_ms),
        burst_p99_ms=percentile(burst_ms, 0.99),
        paced_count=paced_count,
        paced_p50_ms=statistics.median(paced_ms),
        paced_p99_ms=percentile(paced_ms, 0.99),
        dispatch_calls=calls,
        cpu_ms_per_run=cpu * 1000 / count,
    )
    baseline = noop_baseline(count, timeout, log)
    return figures, baseline, checks
