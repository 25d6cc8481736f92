"""Reads for webhooks_app."""

import threading
import time

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from webhooks_app.models import Source

_sources: dict[str, tuple[float, Source | None]] = {}
_lock = threading.Lock()


def source_by_slug(slug: str) -> Source | None:
    """The source of a slug, enabled or not, cached per process for SOURCE_CACHE_SECONDS: the
    lookup was a third of the intake's database work, and a disabled source's refusals are
    counted (webhooks_app.refusals) without a query each. A change made in this process applies
    at once (signals below); other processes see it within the TTL."""
    now = time.monotonic()
    cached = _sources.get(slug)
    if cached is not None and cached[0] > now:
        return cached[1]
    source = Source.objects.filter(slug=slug).first()
    with _lock:
        if len(_sources) > 10_000:  # unknown slugs must not grow the cache without bound
            _sources.clear()
        _sources[slug] = (now + settings.MENDHOOK_SOURCE_CACHE_SECONDS, source)
    return source


@receiver(post_save, sender=Source)
@receiver(post_delete, sender=Source)
def _forget_source(sender: type[Source], instance: Source, **kwargs: object) -> None:
    with _lock:
        _sources.clear()  # a slug may have changed too; sources change rarely
