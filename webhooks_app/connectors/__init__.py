"""Connectors create items downstream. Each call carries the item's idempotency key, so a
retry after a lost response returns the first creation instead of making a second."""

from webhooks_app.connectors.base import BatchConnector, Connector, TaskSpec
from webhooks_app.connectors.clio import ClioHttpConnector
from webhooks_app.connectors.local import LocalConnector
from webhooks_app.models import ConnectorKind, Source
from webhooks_app.rate_limits import outbound_limit_for


def connector_for(source: Source) -> Connector:
    if source.connector == ConnectorKind.CLIO_HTTP:
        name = source.connector_breaker_name
        return ClioHttpConnector(
            base_url=source.connector_base_url,
            token=source.connector_token,
            breaker_name=name,
            rate_limit=outbound_limit_for(name, source.connector_rate_limit),
        )
    return LocalConnector()


__all__ = ["BatchConnector", "Connector", "TaskSpec", "connector_for"]
