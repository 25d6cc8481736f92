"""The connector interface."""

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class TaskSpec:
    organization_id: int
    entity_id: str
    title: str
    description: str
    assignee: str
    due_at: datetime | None
    idempotency_key: str


class Connector(Protocol):
    def create_task(self, spec: TaskSpec) -> str:
        """Create the task (or find the one created earlier with the same idempotency key) and
        return its downstream id. Raises ProcessingError with a catalogue code on failure."""
        ...


class BatchConnector(Connector, Protocol):
    """A connector whose writes share mendhook's database transaction. Its items can be created
    together and recorded in the same commit: all or nothing, so no per-item commits needed."""

    def create_tasks(self, specs: list[TaskSpec]) -> dict[str, str]:
        """Create every task; return downstream ids by idempotency key."""
        ...
