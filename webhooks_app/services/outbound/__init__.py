"""Outbound notifications: changes become signed webhooks to the organization's endpoints."""

from webhooks_app.services.outbound.emit import outbound_emit

__all__ = ["outbound_emit"]
