"""Writes for webhooks_app: intake, dispatch, processing. Import from the concept module."""
