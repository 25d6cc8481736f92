"""workflows_app's handlers for inbound webhook events (registered with webhooks_app.handlers
from WorkflowsAppConfig.ready)."""
