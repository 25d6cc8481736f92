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
