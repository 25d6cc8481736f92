"""Connectors of workflow steps: the providers a step reaches (voice calls, SMS, email, outbound
webhooks). Every provider HTTP request goes through `http.provider_post`."""
