"""The analysis endpoint sits behind its own circuit breaker: while it is down, calls get the
fallback disposition at once instead of each waiting out a failing model."""

import pytest

from tests.support.fake_http import Fault
from webhooks_app.breakers import breaker_reset
from webhooks_app.errors import ErrorCode
from workflows_app.connectors.analysis import SYSTEM, AnalysisFailed, analysis_request


def test_an_analysis_endpoint_that_keeps_failing_is_not_asked_again_until_its_breaker_resets(settings, fake_ai):
    settings.ANALYSIS_BASE_URL = f"{fake_ai.url}/v1"
    settings.MENDHOOK_BREAKER_OVERRIDES = {SYSTEM: {"fail_max": 2, "reset_seconds": 60}}
    fake_ai.reset()
    fake_ai.fail_next(Fault(500), Fault(500))
    ask = {"transcript": "Agent: hi", "duration_seconds": 40.0, "dispositions": ["Interested"]}
    try:
        codes = []
        for _ in range(4):
            with pytest.raises(AnalysisFailed) as failed:
                analysis_request(**ask)
            codes.append(failed.value.code)
        assert codes == [
            ErrorCode.PROVIDER_FAILED,
            ErrorCode.PROVIDER_FAILED,
            ErrorCode.CIRCUIT_OPEN,
            ErrorCode.CIRCUIT_OPEN,
        ]
        assert len(fake_ai.requests) == 2
    finally:
        breaker_reset(SYSTEM)
