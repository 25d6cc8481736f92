"""The registry of operator acts: every door (admin, API, replays, the system) runs them through
ops_app.acts.base.act_run, which audits each run in ops_app.AuditEntry."""

from django.db import models

from ops_app.acts.base import Act, ActRefused, Plan, act_run
from ops_app.acts.breakers import BREAKER_ACTS
from ops_app.acts.error_groups import ERROR_GROUP_ACTS
from ops_app.acts.events import EVENT_ACTS
from ops_app.acts.outbound import OUTBOUND_ACTS
from ops_app.acts.workflows import WORKFLOW_ACTS

ACTS: dict[str, Act] = {
    str(act.name): act for act in (*EVENT_ACTS, *ERROR_GROUP_ACTS, *BREAKER_ACTS, *WORKFLOW_ACTS, *OUTBOUND_ACTS)
}


def acts_for(model: type[models.Model]) -> dict[str, Act]:
    return {name: act for name, act in ACTS.items() if act.model is model}


__all__ = ["ACTS", "Act", "ActRefused", "Plan", "act_run", "acts_for"]
