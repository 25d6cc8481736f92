"""Readiness: run each component's check at once and judge the answers for one process role.

Which failures make a process not ready (the rest are warnings, status "degraded"):

- web: the database, the broker or Redis is down. Intake stores, publishes and rate-limits with
  them. A stopped worker or beat does not stop it from accepting webhooks durably, so a load
  balancer must not take it out for that: those are warnings.
- worker: the database or the broker is down, or its own node does not answer a ping.
- beat: the database or the broker is down, or the heartbeat is stale (a standby beat is
  healthy while the lock holder beats).
- platform: any component fails; for a monitor that pages a person, not for a load balancer.
"""

import asyncio
import enum
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from health_check.base import HealthCheck, HealthCheckResult

from ops_app.health.checks import (
    BeatHeartbeat,
    Breakers,
    Broker,
    Component,
    EventBacklog,
    WorkerNode,
    Workers,
    WorkflowBacklog,
    database_check,
    redis_check,
)

# Seconds a client should wait before asking again after a 503.
RETRY_AFTER_SECONDS = 5


class Role(enum.StrEnum):
    WEB = "web"
    WORKER = "worker"
    BEAT = "beat"
    PLATFORM = "platform"


CHECKS: dict[str, Callable[[], HealthCheck]] = {
    "database": database_check,
    "redis": redis_check,
    "broker": Broker,
    "workers": Workers,
    "beat": BeatHeartbeat,
    "breakers": Breakers,
    "events": EventBacklog,
    "workflow_runs": WorkflowBacklog,
}
ESSENTIAL = frozenset({"database", "broker"})
CRITICAL: dict[Role, frozenset[str]] = {
    Role.WEB: ESSENTIAL | {"redis"},
    Role.WORKER: ESSENTIAL | {"node"},
    Role.BEAT: ESSENTIAL | {"beat"},
    Role.PLATFORM: frozenset(CHECKS),
}

# Sync checks run here; a handful of threads shared by every probe this process answers.
_executor = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="health")


@dataclass(frozen=True)
class Readiness:
    role: Role
    components: dict[str, dict[str, Any]]

    @property
    def reasons(self) -> list[str]:
        return [f"{name}: {c['detail']}" for name, c in self.components.items() if c["critical"] and not c["ok"]]

    @property
    def warnings(self) -> list[str]:
        return [f"{name}: {c['detail']}" for name, c in self.components.items() if not c["critical"] and not c["ok"]]

    @property
    def ready(self) -> bool:
        return not self.reasons

    @property
    def status(self) -> str:
        if self.reasons:
            return "unavailable"
        return "degraded" if self.warnings else "ok"

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "role": self.role.value,
            "reasons": self.reasons,
            "warnings": self.warnings,
            "components": self.components,
        }


def _checks_for(role: Role, *, node: str | None) -> Iterator[tuple[str, HealthCheck]]:
    if role is Role.WORKER:
        yield from ((name, CHECKS[name]()) for name in sorted(ESSENTIAL))
        yield "node", WorkerNode(node=node or "")
    elif role is Role.BEAT:
        yield from ((name, CHECKS[name]()) for name in (*sorted(ESSENTIAL), "beat"))
    else:
        yield from ((name, make()) for name, make in CHECKS.items())


def _component(result: HealthCheckResult, *, critical: bool) -> dict[str, Any]:
    error = result.error
    facts = result.check.facts if isinstance(result.check, Component) else {}
    return {
        "ok": error is None,
        "critical": critical,
        # The library's own messages carry no secrets; an unexpected exception is "unknown error".
        "detail": "ok" if error is None else str(error.message),
        "took_ms": round(result.time_taken * 1000, 1),
        **facts,
    }


async def _gather(checks: list[HealthCheck]) -> list[HealthCheckResult]:
    return list(await asyncio.gather(*(check.get_result(_executor) for check in checks)))


def readiness(*, role: Role = Role.WEB, node: str | None = None) -> Readiness:
    """Ask every component of `role` at once; each is bounded by its own timeout."""
    named = list(_checks_for(role, node=node))
    results = asyncio.run(_gather([check for _, check in named]))
    critical = CRITICAL[role]
    return Readiness(
        role=role,
        components={
            name: _component(result, critical=name in critical)
            for (name, _), result in zip(named, results, strict=True)
        },
    )
