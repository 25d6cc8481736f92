"""Resetting a circuit breaker: an operator who knows the system is back closes it at once
instead of waiting for the probe. The target is the breaker's row (ops_app.Breaker); the state
change is webhooks_app.breakers.breaker_reset."""

from collections.abc import Sequence
from dataclasses import dataclass

from ops_app.acts.base import Act, Plan
from ops_app.models import AuditAct, Breaker
from webhooks_app.breakers import CLOSED, BreakerUnknown, breaker_reset, breaker_states
from webhooks_app.services.operations import Actor


@dataclass(frozen=True)
class BreakerChange:
    status_before: str
    status_after: str


def _plan_many(rows: Sequence[Breaker]) -> list[Plan]:
    states = {s.name: s.state for s in breaker_states()}
    plans = []
    for row in rows:
        state = states.get(row.name)
        if state is None:
            plans.append(Plan(row, False, "never used"))
        elif state == CLOSED:
            plans.append(Plan(row, False, "already closed"))
        else:
            plans.append(Plan(row, True))
    return plans


def _reset(*, target_id: int, actor: Actor, note: str) -> BreakerChange:
    row = Breaker.objects.get(pk=target_id)
    before = breaker_reset(row.name)
    return BreakerChange(status_before=before.state, status_after=CLOSED)


RESET_BREAKER = Act(
    name=AuditAct.RESET_BREAKER,
    title="Reset circuit breakers",
    button="Reset",
    verb="reset",
    permission="ops_app.reset_breaker",
    model=Breaker,
    needs_note=True,
    plan_many=_plan_many,
    run=_reset,
    refused_by=BreakerUnknown,
)
BREAKER_ACTS = (RESET_BREAKER,)
