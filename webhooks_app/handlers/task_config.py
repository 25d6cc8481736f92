"""An organization's task templates and assignee rules, cached in each worker process.

Task generation read both on every event (two queries). The cache is keyed by the
organization's `config_version`, which every save or delete of a template or rule bumps in the
same transaction (signals below); the event is read together with its organization, so checking
the version costs no query. Writes that bypass signals (QuerySet.update, bulk_create) are seen
once an entry is CONFIG_CACHE_SECONDS old.
"""

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from webhooks_app.models import AssigneeRule, Organization, TaskTemplate

CONFIG_CACHE_SECONDS = 60.0
# Organizations whose configuration one process keeps; past it the cache starts again.
MAX_CACHED_ORGANIZATIONS = 1_000


@dataclass(frozen=True)
class TaskConfig:
    # (trigger event type, stage) -> templates in task-number order
    templates: dict[tuple[str, str], list[TaskTemplate]]
    # role -> {location -> assignee}
    rules: dict[str, dict[str, str]]

    def templates_for(self, event_type: str, stage: str) -> list[TaskTemplate]:
        return self.templates.get((event_type, stage), [])

    def assignee(self, role: str, location: str) -> str:
        """An exact location beats the "*" rule for the same role; "" when neither exists."""
        by_location = self.rules.get(role, {})
        return by_location.get(location) or by_location.get(AssigneeRule.ANY_LOCATION, "")


# Organization id -> ((created_at, config_version), loaded at (monotonic), config). The creation
# time guards against an id used again after its organization was deleted.
_cache: dict[int, tuple[tuple[datetime, int], float, TaskConfig]] = {}
_lock = threading.Lock()


def task_config(organization: Organization) -> TaskConfig:
    key = (organization.created_at, organization.config_version)
    now = time.monotonic()
    cached = _cache.get(organization.pk)
    if cached is not None and cached[0] == key and now - cached[1] < CONFIG_CACHE_SECONDS:
        return cached[2]
    config = _load(organization.pk)
    with _lock:
        if len(_cache) >= MAX_CACHED_ORGANIZATIONS:
            _cache.clear()
        _cache[organization.pk] = (key, now, config)
    return config


def _load(organization_id: int) -> TaskConfig:
    templates: dict[tuple[str, str], list[TaskTemplate]] = defaultdict(list)
    for template in TaskTemplate.objects.filter(organization_id=organization_id).order_by("task_number"):
        templates[(template.trigger_event_type, template.stage)].append(template)
    rules: dict[str, dict[str, str]] = defaultdict(dict)
    for role, location, assignee in AssigneeRule.objects.filter(organization_id=organization_id).values_list(
        "role", "location", "assignee"
    ):
        rules[role][location] = assignee
    return TaskConfig(templates=dict(templates), rules=dict(rules))


@receiver(post_save, sender=TaskTemplate)
@receiver(post_delete, sender=TaskTemplate)
@receiver(post_save, sender=AssigneeRule)
@receiver(post_delete, sender=AssigneeRule)
def _config_changed(
    sender: type[TaskTemplate | AssigneeRule], instance: TaskTemplate | AssigneeRule, **kwargs: object
) -> None:
    # In the writer's transaction: the new version is visible exactly when the change is.
    Organization.objects.filter(pk=instance.organization_id).update(config_version=F("config_version") + 1)
