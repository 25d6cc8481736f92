"""The REST API under /api/v1/: delivery stats, queue health, failures, acts on events."""
