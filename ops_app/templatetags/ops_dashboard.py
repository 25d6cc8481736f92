"""{% ops_dashboard %}: the dashboard on the admin home (the admin's index view has no hook
for extra context, so its template asks for it)."""

from typing import Any

from django import template
from django.utils import timezone

from ops_app.dashboard import dashboard_context

register = template.Library()


@register.inclusion_tag("admin/ops_app/dashboard.html", takes_context=True)
def ops_dashboard(context: template.Context) -> dict[str, Any]:
    return dashboard_context(user=context["request"].user, now=timezone.now())
