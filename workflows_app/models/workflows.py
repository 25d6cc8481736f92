"""Workflows: ordered steps, each an action with a config and a failure strategy."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from webhooks_app.encryption import secret_decrypt, secret_encrypt
from webhooks_app.models import Organization
from webhooks_app.models.sources import new_signing_secret
from workflows_app.step_configs import StepConfigError, step_config_validate


class ActionType(models.TextChoices):
    CALL = "call", "Voice call"
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"
    WAIT = "wait", "Wait"
    WEBHOOK = "webhook", "Outbound webhook"
    UPDATE_LEAD = "update_lead", "Update lead"
    START_WORKFLOW = "start_workflow", "Start another workflow"


# Steps that need the lead's phone or email: checked before a run starts (seed scenario 2).
NEEDS_PHONE = frozenset({ActionType.CALL, ActionType.SMS})
NEEDS_EMAIL = frozenset({ActionType.EMAIL})


class FailureStrategy(models.TextChoices):
    """What a step's failure does to its run, once transient retries are spent (seed 004)."""

    STOP = "stop", "Stop the run"
    SKIP = "skip", "Skip the step"
    RETRY = "retry", "Retry the step later"
    CONTINUE = "continue", "Continue to the next step"


class Workflow(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="workflows")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="uniq_workflow_name")]

    def __str__(self) -> str:
        return self.name


class WorkflowStep(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    # 1-based order within the workflow; runs point at a position, so reordering a live workflow
    # moves its runs with it.
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=200, blank=True)
    action_type = models.CharField(max_length=20, choices=ActionType.choices)
    config = models.JSONField(default=dict, blank=True)
    failure_strategy = models.CharField(max_length=10, choices=FailureStrategy.choices, default=FailureStrategy.STOP)
    # Retries of the strategy `retry` (seed: max_retries, default 3).
    max_retries = models.PositiveSmallIntegerField(default=3)
    # Used where smart scheduling has no business-hours answer (e.g. a business without hours);
    # the seed's retry_delay_minutes.
    retry_delay_minutes = models.PositiveIntegerField(default=60)
    # Webhook steps sign their requests (Standard Webhooks) with this secret: Fernet ciphertext,
    # made when the step is saved, shown to a person once.
    signing_secret_encrypted = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["workflow", "position"]
        constraints = [models.UniqueConstraint(fields=["workflow", "position"], name="uniq_step_position")]

    def __str__(self) -> str:
        return f"{self.position}. {self.name or self.get_action_type_display()}"

    def clean(self) -> None:
        try:
            self.config = step_config_validate(self.action_type, self.config)
        except StepConfigError as exc:
            raise ValidationError({"config": str(exc)}) from None

    @property
    def label(self) -> str:
        return self.name or self.get_action_type_display()

    @property
    def signing_secret(self) -> str:
        return secret_decrypt(self.signing_secret_encrypted) if self.signing_secret_encrypted else ""

    def signing_secret_ensure(self) -> str | None:
        """A webhook step without a secret gets one; returns it (the one time it is seen), or
        None when the step already had one or is not a webhook step."""
        if self.action_type != ActionType.WEBHOOK or self.signing_secret_encrypted:
            return None
        secret = new_signing_secret()
        self.signing_secret_encrypted = secret_encrypt(secret)
        return secret

    def config_value(self, key: str, default: Any = None) -> Any:
        return (self.config or {}).get(key, default)
