"""Email through Django's email backend (SMTP in production, locmem in tests)."""

import smtplib

from django.conf import settings
from django.core.mail import EmailMessage

from webhooks_app.errors import ErrorCode, ProcessingError
from workflows_app.connectors.base import StepContext, StepResult, lead_text


def email_send(ctx: StepContext) -> StepResult:
    if not ctx.lead.email:
        raise ProcessingError(f"lead {ctx.lead.id} has no email address", code=ErrorCode.VALIDATION)
    # SMTP has no idempotency key; a Message-ID made from it lets mail systems drop a re-sent copy.
    message_id = f"<{ctx.idempotency_key.replace(':', '.')}@mendhook>"
    message = EmailMessage(
        subject=lead_text(ctx.step.config_value("subject"), ctx.lead),
        body=lead_text(ctx.step.config_value("body"), ctx.lead),
        from_email=ctx.step.config_value("from_email") or settings.DEFAULT_FROM_EMAIL,
        to=[ctx.lead.email],
        headers={"Message-ID": message_id, "X-Idempotency-Key": ctx.idempotency_key},
    )
    try:
        message.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:
        raise ProcessingError(f"mail server refused {ctx.lead.email}", code=ErrorCode.DOWNSTREAM_REJECTED) from exc
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, ConnectionError) as exc:
        raise ProcessingError(f"mail server unreachable ({type(exc).__name__})", code=ErrorCode.CONNECTION) from exc
    except TimeoutError as exc:
        raise ProcessingError("mail server timed out", code=ErrorCode.TIMEOUT) from exc
    except smtplib.SMTPException as exc:
        raise ProcessingError(f"mail server failed ({type(exc).__name__})", code=ErrorCode.PROVIDER_FAILED) from exc
    return StepResult(provider_id=message_id)
