"""Query filters of the workflow lists (django-filter). A value that does not fit (an unknown
status, a non-number id) is a 400 naming the parameter, never an ignored filter."""

from django.db.models import Exists, OuterRef, QuerySet
from django_filters import rest_framework as filters

from workflows_app.models import (
    ActionExecution,
    ActionExecutionStatus,
    CallLog,
    Lead,
    LeadStatus,
    RunStatus,
    StepStatus,
    WorkflowRun,
)

YES_NO = [("true", "true"), ("false", "false")]


class StrictFilterSet(filters.FilterSet):
    """`?status=` is a value, not an absent parameter: like any value outside a filter's
    choices it is a 400 naming the parameter (the schema and clients read it so; django-filter
    alone would ignore it and answer the unfiltered list)."""

    def is_valid(self) -> bool:
        valid = super().is_valid()
        empty = [name for name in self.filters if name in self.data and self.data.get(name) == ""]
        for name in empty:
            if name not in self.form.errors:
                self.form.add_error(name, "This parameter may not be empty.")
        return valid and not empty


class RunFilter(StrictFilterSet):
    status = filters.ChoiceFilter(choices=RunStatus.choices, help_text="The run's status.")
    step_status = filters.ChoiceFilter(choices=StepStatus.choices, help_text="The current step's status.")
    workflow = filters.NumberFilter(field_name="workflow_id", help_text="A workflow's id.")
    lead = filters.NumberFilter(field_name="lead_id", help_text="A lead's id.")
    needs_review = filters.ChoiceFilter(
        choices=YES_NO, method="filter_needs_review", help_text="true: only runs waiting for a person's decision."
    )

    class Meta:
        model = WorkflowRun
        fields = ["status", "step_status", "workflow", "lead", "needs_review"]

    def filter_needs_review(self, queryset: QuerySet[WorkflowRun], name: str, value: str) -> QuerySet[WorkflowRun]:
        if value == "true":
            return queryset.filter(status=RunStatus.NEEDS_REVIEW)
        return queryset.exclude(status=RunStatus.NEEDS_REVIEW)


def failed_actions_exist() -> Exists:
    return Exists(ActionExecution.objects.filter(call=OuterRef("pk"), status=ActionExecutionStatus.FAILED))


class CallFilter(StrictFilterSet):
    disposition = filters.CharFilter(max_length=200, help_text="The disposition's name, exactly.")
    ai_analysis_failed = filters.ChoiceFilter(
        choices=YES_NO, method="filter_flag", help_text="true: only calls given the fallback disposition."
    )
    has_failed_actions = filters.ChoiceFilter(
        choices=YES_NO, method="filter_failed_actions", help_text="true: only calls with a failed disposition action."
    )

    class Meta:
        model = CallLog
        fields = ["disposition", "ai_analysis_failed", "has_failed_actions"]

    def filter_flag(self, queryset: QuerySet[CallLog], name: str, value: str) -> QuerySet[CallLog]:
        return queryset.filter(**{name: value == "true"})

    def filter_failed_actions(self, queryset: QuerySet[CallLog], name: str, value: str) -> QuerySet[CallLog]:
        has_failed = failed_actions_exist()
        return queryset.filter(has_failed if value == "true" else ~has_failed)


class LeadFilter(StrictFilterSet):
    status = filters.ChoiceFilter(choices=LeadStatus.choices)
    phone = filters.CharFilter(max_length=32, help_text="The phone in E.164, exactly.")
    email = filters.CharFilter(field_name="email", lookup_expr="iexact", max_length=254)

    class Meta:
        model = Lead
        fields = ["status", "phone", "email"]
