"""Helpers for the admin tests (events, error records, dashboard, browser): users, the Ops staff
group as the migrations leave it, events with a ledger, and the event admin's URLs."""

import importlib
import re
from types import SimpleNamespace

from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test import Client
from django.urls import reverse

from tests.test_beat_jobs import make_event
from webhooks_app.errors import FailureKind
from webhooks_app.models import EventAction, EventItem, EventStatus, ItemStatus, WebhookEvent

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
    for label, codenames in audited.GRANTED.items():
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


def event_with_ledger(
    source,
    *,
    failed=(6,),
    items=10,
    status=EventStatus.PARTIAL_FAILURE,
    code="ERR_ASSIGNEE_NO_CSC",
    error="No CSC found for location: naples",
    kind=FailureKind.RECOVERABLE,
    **fields,
) -> WebhookEvent:
    """An event as processing leaves it: a ledger of items, the failed ones in failure_details."""
    event = make_event(source, status=status, **fields)
    rows = []
    for number in range(1, items + 1):
        failing = number in failed
        rows.append(
            EventItem(
                event=event,
                number=number,
                title=f"Task {number}" if number != 6 else "Send Initial Consultation Packet",
                idempotency_key=f"{event.id}:{number}",
                status=ItemStatus.FAILED if failing else ItemStatus.SUCCEEDED,
                downstream_id="" if failing else f"local-{number}",
                error=error if failing else "",
                error_code=code if failing else "",
                failure_kind=kind if failing else "",
                attempts=1,
            )
        )
    EventItem.objects.bulk_create(rows)
    failures = [row.failure_detail() for row in rows if row.status == ItemStatus.FAILED]
    WebhookEvent.objects.filter(id=event.id).update(
        success=not failures,
        action=EventAction.PARTIAL_FAILURE if failures else EventAction.CREATED_TASKS,
        tasks_created=items - len(failures),
        tasks_failed=len(failures),
        failure_details=failures or None,
        last_error_code=code if failures else "",
        last_error=f"{len(failures)} item(s) failed; #{failed[0]}: {error}" if failures else "",
        attempts=1,
    )
    event.refresh_from_db()
    return event


def act_url(event: WebhookEvent, act: str) -> str:
    return reverse("admin:webhooks_app_webhookevent_act", args=[event.pk, act])


def change_url(event: WebhookEvent) -> str:
    return reverse("admin:webhooks_app_webhookevent_change", args=[event.pk])


def listed_ids(response) -> set[str]:
    return set(re.findall(r'name="_selected_action" value="([0-9a-f-]{36})"', response.content.decode()))


def many_events(source, count: int) -> list[WebhookEvent]:
    """`count` received events in one INSERT: a table big enough to pass the admin's limits."""
    return WebhookEvent.objects.bulk_create(
        WebhookEvent(
            organization=source.organization,
            source=source,
            idempotency_key=f"bulk-{n}",
            event_type="matter.stage_changed",
            payload={},
        )
        for n in range(count)
    )
