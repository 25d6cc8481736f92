"""Leads: the people workflows reach out to."""

import phonenumbers
from django.core.exceptions import ValidationError
from django.db import models

from webhooks_app.models import Organization


class LeadStatus(models.TextChoices):
    NEW = "new", "New"
    CONTACTED = "contacted", "Contacted"
    QUALIFIED = "qualified", "Qualified"
    CALLBACK = "callback", "Callback scheduled"
    UNQUALIFIED = "unqualified", "Unqualified"
    DO_NOT_CONTACT = "do_not_contact", "Do not contact"
    CUSTOMER = "customer", "Customer"


def phone_e164(raw: str, *, region: str | None = None) -> str:
    """The number in E.164, or ValueError naming what is wrong. `region` lets a national number
    ("(415) 555-2671") parse; without it the number needs its +country prefix."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"phone {raw!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"phone {raw!r} is not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class Lead(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="leads")
    name = models.CharField(max_length=200)
    # E.164 when valid. A lead may be stored with a phone that does not parse (imported data);
    # a workflow with call or SMS steps refuses to start for it, saying why.
    phone = models.CharField(max_length=32, blank=True)
    email = models.EmailField(blank=True)
    timezone = models.CharField(max_length=64, blank=True, help_text="IANA name; blank: the organization's")
    status = models.CharField(max_length=20, choices=LeadStatus.choices, default=LeadStatus.NEW)
    custom_fields = models.JSONField(default=dict, blank=True)
    # Set by a disposition's schedule_callback action.
    callback_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "name"]
        indexes = [models.Index(fields=["organization", "phone"], name="lead_org_phone_idx")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.phone:
            try:
                self.phone = phone_e164(self.phone)
            except ValueError as exc:
                raise ValidationError({"phone": str(exc)}) from None
        if not isinstance(self.custom_fields, dict):
            raise ValidationError({"custom_fields": "an object of field names to values"})

    @property
    def phone_valid(self) -> bool:
        if not self.phone:
            return False
        try:
            phone_e164(self.phone)
        except ValueError:
            return False
        return True
