"""What a step's connector is given and what it answers."""

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from workflows_app.models import Lead, WorkflowStep


@dataclass(frozen=True)
class StepContext:
    run_id: uuid.UUID
    organization_id: int
    workflow_id: int
    lead: Lead
    step: WorkflowStep
    # Sent with every provider request of this try of the step (see models.runs.TRY_CONTINUES).
    idempotency_key: str
    now: datetime


@dataclass(frozen=True)
class StepResult:
    # The provider's id for what it did (call id, message sid, child run id).
    provider_id: str = ""
    # When the run's next step is due, if not at once (a wait step).
    next_action_at: datetime | None = None


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def lead_text(template: str, lead: Lead) -> str:
    """`template` with {name}, {email}, {phone}, {status} and the lead's custom fields filled
    in; an unknown placeholder is left as written. A plain substitution, not str.format, so a
    template cannot reach attributes of the values."""
    values: dict[str, object] = {**(lead.custom_fields or {})}
    values.update(name=lead.name, email=lead.email, phone=lead.phone, status=lead.status)
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)
