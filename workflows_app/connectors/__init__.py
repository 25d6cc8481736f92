"""Clients of the third-party services workflows and dispositions reach: the providers a step
reaches (voice calls, SMS, email, outbound webhooks) and call analysis. Every provider HTTP
request of a step goes through `http.provider_post`."""
