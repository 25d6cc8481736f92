"""A row per circuit breaker name: what the audit of a reset points at, and what the admin
lists. The breaker's state itself lives in Redis (webhooks_app.breakers); rows are added when
the ops room first sees a name, never by the connectors' hot path."""

from collections.abc import Iterable

from django.db import models
from django.utils import timezone


class BreakerQuerySet(models.QuerySet["Breaker"]):
    def sync(self, names: Iterable[str]) -> None:
        """A row for each name not seen before; safe to run twice at once (the unique name)."""
        self.bulk_create([Breaker(name=name) for name in names], ignore_conflicts=True)


class Breaker(models.Model):
    name = models.CharField(max_length=200, unique=True)
    first_seen_at = models.DateTimeField(default=timezone.now)

    objects = BreakerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "circuit breaker"
        permissions = [("reset_breaker", "Can reset circuit breakers")]

    def __str__(self) -> str:
        return self.name
