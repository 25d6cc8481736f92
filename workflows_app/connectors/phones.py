"""The lead's number for calls and texts."""

from webhooks_app.errors import ErrorCode, ProcessingError
from workflows_app.models import Lead, phone_e164


def lead_phone(lead: Lead) -> str:
    """The lead's phone in E.164. Checked before a run starts, but a lead can be edited while
    its run waits: a number that no longer parses fails the step permanently."""
    if not lead.phone:
        raise ProcessingError(f"lead {lead.id} has no phone number", code=ErrorCode.INVALID_PHONE)
    try:
        return phone_e164(lead.phone)
    except ValueError as exc:
        raise ProcessingError(str(exc), code=ErrorCode.INVALID_PHONE) from None
