"""Rate limits per API key (or staff user), shared by every web process through Redis."""

import logging
from typing import TYPE_CHECKING

import redis
from django.core.cache import caches
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from ops_app.models import ApiKey

if TYPE_CHECKING:
    # Not at run time: DRF imports these classes while rest_framework.views is half-loaded.
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)


class ApiClientRateThrottle(ScopedRateThrottle):
    """A view's `throttle_scope` ("read" or "write") names its rate in DEFAULT_THROTTLE_RATES.
    The count is kept per key, not per IP: many clients share an egress IP, and one client may
    call from many."""

    cache = caches["api"]

    def get_rate(self) -> str | None:
        # Read at call time (DRF copies the rates once at import), so settings changes apply.
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope or "")
        return None if rate is None else str(rate)

    def get_cache_key(self, request: Request, view: "APIView") -> str | None:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            return None
        return f"throttle:{self.scope}:{ident}"

    def allow_request(self, request: Request, view: "APIView") -> bool:
        try:
            return super().allow_request(request, view)
        except redis.RedisError:
            # Fail open: a Redis outage must not take the API down with it; queue-health is the
            # endpoint that has to report that outage.
            logger.warning("API throttle state unavailable; request let through", exc_info=True)
            return True
