"""Handlers by (source kind, event type). A handler works the event's item ledger and returns
what it did; the processing service derives the event's outcome from the ledger."""

from collections.abc import Callable
from dataclasses import dataclass

from webhooks_app.models import EventItem, WebhookEvent


@dataclass(frozen=True)
class HandlerResult:
    # Set when the event produced no items (e.g. no templates for the stage).
    action_without_items: str = ""
    # The event's whole ledger as the handler left it, in number order; None: read it again.
    items: list[EventItem] | None = None
    # Writes that share mendhook's database (a batch connector's rows and the ledger they
    # settle), left for the processing service to run inside the outcome's transaction: the
    # downstream rows, the ledger and the event's status commit together, in one commit. They
    # finish `items` (outcomes, downstream ids) when they run.
    write: Callable[[], None] | None = None


Handler = Callable[[WebhookEvent], HandlerResult]

ANY_EVENT_TYPE = "*"
_registry: dict[tuple[str, str], Handler] = {}


def register(kind: str, event_type: str) -> Callable[[Handler], Handler]:
    def decorator(handler: Handler) -> Handler:
        _registry[(kind, event_type)] = handler
        return handler

    return decorator


def handler_for(kind: str, event_type: str) -> Handler | None:
    return _registry.get((kind, event_type)) or _registry.get((kind, ANY_EVENT_TYPE))


def registered() -> dict[tuple[str, str], str]:
    return {key: f"{h.__module__}.{h.__qualname__}" for key, h in sorted(_registry.items())}
