"""Voice calls, Retell-style: `POST /v2/create-phone-call`."""

from django.conf import settings

from webhooks_app.errors import ErrorCode, ProcessingError
from workflows_app.connectors.base import StepContext, StepResult
from workflows_app.connectors.http import provider_post, response_field
from workflows_app.connectors.phones import lead_phone

SYSTEM = "retell"


def call_create(ctx: StepContext) -> StepResult:
    """Place the call; the provider's call_id is the result's provider_id."""
    from_number = ctx.step.config_value("from_number") or settings.RETELL_FROM_NUMBER
    if not from_number:
        raise ProcessingError(
            "the call step has no from_number and RETELL_FROM_NUMBER is not set", code=ErrorCode.VALIDATION
        )
    agent_id = ctx.step.config_value("agent_id")
    body = {
        "from_number": from_number,
        "to_number": lead_phone(ctx.lead),
        "override_agent_id": agent_id,
        "metadata": {"run_id": str(ctx.run_id), "lead_id": ctx.lead.id, "step": ctx.step.position},
    }
    max_duration = ctx.step.config_value("max_duration_seconds")
    if max_duration:
        body["max_call_duration_ms"] = int(max_duration) * 1000
    response = provider_post(
        SYSTEM,
        f"{settings.RETELL_BASE_URL.rstrip('/')}/v2/create-phone-call",
        idempotency_key=ctx.idempotency_key,
        json=body,
        headers={"Authorization": f"Bearer {settings.RETELL_API_KEY}"},
    )
    return StepResult(provider_id=response_field(SYSTEM, response, "call_id"))
