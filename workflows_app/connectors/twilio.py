"""SMS, Twilio-style: form-encoded `POST /2010-04-01/Accounts/{sid}/Messages.json`."""

from django.conf import settings

from webhooks_app.errors import ErrorCode, ProcessingError
from workflows_app.connectors.base import StepContext, StepResult, lead_text
from workflows_app.connectors.http import provider_post, response_field
from workflows_app.connectors.phones import lead_phone

SYSTEM = "twilio"


def sms_post(*, to: str, body: str, idempotency_key: str, from_number: str = "") -> str:
    """Send one text; return the provider's message sid. Used by the workflow SMS step and the
    send_sms disposition action, each with its own idempotency key."""
    sender = from_number or settings.TWILIO_FROM_NUMBER
    if not sender:
        raise ProcessingError("the SMS has no from_number and TWILIO_FROM_NUMBER is not set", code=ErrorCode.VALIDATION)
    sid = settings.TWILIO_ACCOUNT_SID
    response = provider_post(
        SYSTEM,
        f"{settings.TWILIO_BASE_URL.rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json",
        idempotency_key=idempotency_key,
        data={"To": to, "From": sender, "Body": body},
        # Twilio's own name for the idempotency header, beside the generic one.
        headers={"I-Twilio-Idempotency-Token": idempotency_key},
        auth=(sid, settings.TWILIO_AUTH_TOKEN),
    )
    return response_field(SYSTEM, response, "sid")


def sms_send(ctx: StepContext) -> StepResult:
    """Send the step's text; the message sid is the result's provider_id."""
    sid = sms_post(
        to=lead_phone(ctx.lead),
        body=lead_text(ctx.step.config_value("body"), ctx.lead),
        idempotency_key=ctx.idempotency_key,
        from_number=ctx.step.config_value("from_number") or "",
    )
    return StepResult(provider_id=sid)
