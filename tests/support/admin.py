"""Helpers for the admin tests (events, error records, dashboard, browser): users, the Ops staff
group as the migrations leave it, and the event admin's URLs."""

import importlib
import re
from types import SimpleNamespace

from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test import Client
from django.urls import reverse

from webhooks_app.models import WebhookEvent

OPS_STAFF = "Ops staff"
CHANGELIST = "/admin/webhooks_app/webhookevent/"


def ops_staff_group_ensure() -> Group:
    """The group the data migrations create. A transactional test's flush empties auth tables,
    so tests that need it (re)apply the migrations' own grants with the live app registry."""
    group = Group.objects.filter(name=OPS_STAFF).first()
    if group is not None and group.permissions.exists():
        return group
    created = importlib.import_module("ops_app.migrations.0002_ops_staff_group")
    audited = importlib.import_module("ops_app.migrations.0004_audit_entry")
    # What the group holds after every migration that changed it.
    permissions = {
        label: [c for c in codenames if c not in audited.RETIRED.get(label, [])]
        for label, codenames in created.PERMISSIONS.items()
    }
    later = [
        audited,
        *(
            importlib.import_module(f"ops_app.migrations.{m}")
            for m in (
                "0005_breaker",
                "0006_workflow_acts",
                "0008_alerts",
                "0009_retention_run",
                "0010_outbound_acts",
                "0012_diagnostics",
            )
        ),
    ]
    for migration in later:
        for label, codenames in migration.GRANTED.items():
            permissions[label] = [*permissions.get(label, []), *codenames]
    created.ops_staff_group_grant(django_apps, SimpleNamespace(connection=connection), permissions)
    return Group.objects.get(name=OPS_STAFF)


def make_user(username: str, *, group: Group | None = None, perms: tuple[str, ...] = ()) -> User:
    user = User.objects.create_user(username=username, password="correct horse battery", is_staff=True)
    if group is not None:
        user.groups.add(group)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def act_url(event: WebhookEvent, act: str) -> str:
    return reverse("admin:webhooks_app_webhookevent_act", args=[event.pk, act])


def change_url(event: WebhookEvent) -> str:
    return reverse("admin:webhooks_app_webhookevent_change", args=[event.pk])


def listed_ids(response) -> set[str]:
    return set(re.findall(r'name="_selected_action" value="([0-9a-f-]{36})"', response.content.decode()))
