"""The config each disposition action takes, as JSON Schema: checked when an action is saved
(admin, API) and again when it runs, so a misspelt or missing key fails the action naming it."""

from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

from workflows_app.step_configs import LEAD_STATUSES

ACTION_CONFIG_SCHEMAS: dict[str, dict[str, Any]] = {
    "start_workflow": {
        "type": "object",
        "properties": {"workflow_id": {"type": "integer", "minimum": 1}},
        "required": ["workflow_id"],
        "additionalProperties": False,
    },
    "stop_workflow": {
        "type": "object",
        # Absent: "all" of the lead's open runs.
        "properties": {"workflow_id": {"anyOf": [{"type": "integer", "minimum": 1}, {"const": "all"}]}},
        "additionalProperties": False,
    },
    "update_lead_status": {
        "type": "object",
        "properties": {"status": {"enum": LEAD_STATUSES}},
        "required": ["status"],
        "additionalProperties": False,
    },
    "send_sms": {
        "type": "object",
        # {name} is filled with the lead's name.
        "properties": {"body": {"type": "string", "minLength": 1, "maxLength": 1600}},
        "required": ["body"],
        "additionalProperties": False,
    },
    "schedule_callback": {
        "type": "object",
        "properties": {"delay_minutes": {"type": "integer", "minimum": 1, "maximum": 525600}},
        "required": ["delay_minutes"],
        "additionalProperties": False,
    },
    "notify": {
        "type": "object",
        "properties": {"message": {"type": "string", "minLength": 1, "maxLength": 2000}},
        "required": ["message"],
        "additionalProperties": False,
    },
}


class ActionConfigError(ValueError):
    """The config does not fit its action. The message names the field and is safe to show."""


def action_config_validate(action_type: str, config: Any) -> dict[str, Any]:
    schema = ACTION_CONFIG_SCHEMAS.get(action_type)
    if schema is None:
        raise ActionConfigError(f"unknown action type {action_type!r}")
    if config is None:
        config = {}
    error = best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        raise ActionConfigError(f"{action_type} config{'.' + where if where else ''}: {error.message}")
    assert isinstance(config, dict)  # the schema says object
    return config
