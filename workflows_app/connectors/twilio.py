"""SMS, Twilio-style: form-encoded `POST /2010-04-01/Accounts/{sid}/Messages.json`."""

from django.conf import settings

from webhooks_app.errors import ErrorCode, ProcessingError
from workflows_app.connectors.base import StepContext, StepResult, lead_text
from workflows_app.connectors.http import provider_post, response_field
from workflows_app.connectors.phones import lead_phone

SYSTEM = "twilio"


def sms_send(ctx: StepContext) -> StepResult:
    """Send the step's text; the message sid is the result's provider_id."""
    from_number = ctx.step.config_value("from_number") or settings.TWILIO_FROM_NUMBER
    if not from_number:
        raise ProcessingError(
            "the SMS step has no from_number and TWILIO_FROM_NUMBER is not set", code=ErrorCode.VALIDATION
        )
    sid = settings.TWILIO_ACCOUNT_SID
    response = provider_post(
        SYSTEM,
        f"{settings.TWILIO_BASE_URL.rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json",
        idempotency_key=ctx.idempotency_key,
        data={
            "To": lead_phone(ctx.lead),
            "From": from_number,
            "Body": lead_text(ctx.step.config_value("body"), ctx.lead),
        },
        # Twilio's own name for the idempotency header, beside the generic one.
        headers={"I-Twilio-Idempotency-Token": ctx.idempotency_key},
        auth=(sid, settings.TWILIO_AUTH_TOKEN),
    )
    return StepResult(provider_id=response_field(SYSTEM, response, "sid"))
