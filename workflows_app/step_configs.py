"""The config each step action takes, as JSON Schema: validated on save (admin, API) and read by
the step's connector. The schemas are the documentation: `additionalProperties: false` makes a
misspelt key an error rather than a silently ignored setting."""

from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

LEAD_STATUSES = ["new", "contacted", "qualified", "callback", "unqualified", "do_not_contact", "customer"]

_E164 = {"type": "string", "pattern": r"^\+[1-9][0-9]{6,14}$"}

STEP_CONFIG_SCHEMAS: dict[str, dict[str, Any]] = {
    "call": {
        "type": "object",
        "properties": {
            "agent_id": {"type": "string", "minLength": 1, "maxLength": 200},
            "from_number": _E164,
            "max_duration_seconds": {"type": "integer", "minimum": 10, "maximum": 7200},
        },
        "required": ["agent_id"],
        "additionalProperties": False,
    },
    "sms": {
        "type": "object",
        "properties": {
            # {name} and other lead fields are filled in when sent.
            "body": {"type": "string", "minLength": 1, "maxLength": 1600},
            "from_number": _E164,
        },
        "required": ["body"],
        "additionalProperties": False,
    },
    "email": {
        "type": "object",
        "properties": {
            "subject": {"type": "string", "minLength": 1, "maxLength": 200},
            "body": {"type": "string", "minLength": 1},
            "from_email": {"type": "string", "format": "email", "maxLength": 254},
        },
        "required": ["subject", "body"],
        "additionalProperties": False,
    },
    "wait": {
        "type": "object",
        "properties": {"minutes": {"type": "integer", "minimum": 1, "maximum": 525600}},
        "required": ["minutes"],
        "additionalProperties": False,
    },
    "webhook": {
        "type": "object",
        "properties": {
            "url": {"type": "string", "pattern": r"^https?://[^\s/]+", "maxLength": 2000},
            "event_type": {"type": "string", "minLength": 1, "maxLength": 100},
        },
        "required": ["url"],
        "additionalProperties": False,
    },
    "update_lead": {
        "type": "object",
        "properties": {
            "status": {"enum": LEAD_STATUSES},
            "custom_fields": {"type": "object"},
        },
        "minProperties": 1,
        "additionalProperties": False,
    },
    "start_workflow": {
        "type": "object",
        "properties": {"workflow_id": {"type": "integer", "minimum": 1}},
        "required": ["workflow_id"],
        "additionalProperties": False,
    },
}


class StepConfigError(ValueError):
    """The config does not fit its action. The message names the field and is safe to show."""


def step_config_validate(action_type: str, config: Any) -> dict[str, Any]:
    """The config if it fits `action_type`'s schema, else StepConfigError naming the problem."""
    schema = STEP_CONFIG_SCHEMAS.get(action_type)
    if schema is None:
        raise StepConfigError(f"unknown action type {action_type!r}")
    if config is None:
        config = {}
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    error = best_match(validator.iter_errors(config))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        raise StepConfigError(f"{action_type} config{'.' + where if where else ''}: {error.message}")
    assert isinstance(config, dict)  # the schema says object
    return config
