"""Models of the ops room: error records, and what operators use to act (API keys, replays)."""

from ops_app.models.alerts import Alert, AlertCondition, AlertState
from ops_app.models.api_keys import ApiKey
from ops_app.models.audit import AuditAct, AuditEntry, AuditVia
from ops_app.models.breakers import Breaker
from ops_app.models.diagnostics import (
    DIAGNOSTIC_SEVERITY_RANK,
    Diagnostic,
    DiagnosticKind,
    DiagnosticSeverity,
)
from ops_app.models.errors import (
    SEVERITY_RANK,
    ErrorRecord,
    ErrorSeverity,
)
from ops_app.models.replays import REPLAY_ACTIVE, Replay, ReplayStatus
from ops_app.models.retention import RetentionRun

__all__ = [
    "DIAGNOSTIC_SEVERITY_RANK",
    "REPLAY_ACTIVE",
    "SEVERITY_RANK",
    "Alert",
    "AlertCondition",
    "AlertState",
    "ApiKey",
    "AuditAct",
    "AuditEntry",
    "AuditVia",
    "Breaker",
    "Diagnostic",
    "DiagnosticKind",
    "DiagnosticSeverity",
    "ErrorRecord",
    "ErrorSeverity",
    "Replay",
    "ReplayStatus",
    "RetentionRun",
]
