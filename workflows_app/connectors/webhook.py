"""Outbound webhooks, signed with the step's secret by the Standard Webhooks library."""

import json

from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from webhooks_app.errors import ErrorCode, ProcessingError
from workflows_app.connectors.base import StepContext, StepResult
from workflows_app.connectors.http import provider_post

SYSTEM = "webhook"


def webhook_send(ctx: StepContext) -> StepResult:
    """POST the run's step to the step's URL. webhook-id is the idempotency key, so the
    receiver can drop a re-sent delivery as Standard Webhooks asks receivers to."""
    secret = ctx.step.signing_secret
    if not secret:
        raise ProcessingError("the webhook step has no signing secret", code=ErrorCode.VALIDATION)
    lead = ctx.lead
    payload = {
        "type": ctx.step.config_value("event_type") or "workflow.step",
        "timestamp": ctx.now.isoformat(),
        "data": {
            "run_id": str(ctx.run_id),
            "workflow_id": ctx.workflow_id,
            "step": ctx.step.position,
            "lead": {
                "id": lead.id,
                "name": lead.name,
                "email": lead.email,
                "phone": lead.phone,
                "status": lead.status,
                "custom_fields": lead.custom_fields,
            },
        },
    }
    body = json.dumps(payload, separators=(",", ":"))
    sent_at = timezone.now()
    signature = Webhook(secret).sign(ctx.idempotency_key, sent_at, body)
    headers = {
        "webhook-id": ctx.idempotency_key,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }
    provider_post(
        SYSTEM,
        ctx.step.config_value("url"),
        idempotency_key=ctx.idempotency_key,
        content=body.encode(),
        headers=headers,
    )
    return StepResult(provider_id=ctx.idempotency_key)
