"""Models that moved between apps keep their rows: each test rolls the schema back to before a
move, writes rows the old way, migrates forward and reads them through today's models."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from ops_app.models import ApiKey, AuditEntry, Replay

DEAD = "dead_letter"
BEFORE_MOVE = [("ops_app", "0002_ops_staff_group"), ("webhooks_app", "0008_source_secrets_encrypted")]


def migrate(targets: list[tuple[str, str]]) -> Any:
    """Migrate to `targets`; returns the historical apps registry at that point."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


def leaf_nodes() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.fixture
def before_move(transactional_db: None) -> Iterator[Any]:
    old_apps = migrate(BEFORE_MOVE)
    yield old_apps
    migrate(leaf_nodes())


def test_it_keeps_api_keys_and_replays_when_they_move_to_ops_app(before_move: Any) -> None:
    Organization = before_move.get_model("webhooks_app", "Organization")
    OldApiKey = before_move.get_model("webhooks_app", "ApiKey")
    OldReplay = before_move.get_model("webhooks_app", "Replay")
    org = Organization.objects.create(name="Moved Firm", slug="moved-firm")
    key = OldApiKey.objects.create(organization=org, name="grafana", prefix="mhk_abc123", key_hash="f" * 64)
    replay = OldReplay.objects.create(
        organization=org,
        api_key=key,
        requested_by="mhk_abc123",
        statuses=["failed"],
        matched_events=7,
        matched_items=3,
        batch_size=50,
        events_per_second=10.0,
    )

    migrate(leaf_nodes())

    moved_key = ApiKey.objects.get(prefix="mhk_abc123")
    assert (moved_key.name, moved_key.organization_id) == ("grafana", org.pk)
    moved_replay = Replay.objects.get(id=replay.id)
    assert (moved_replay.api_key_id, moved_replay.matched_events) == (key.pk, 7)
    assert ApiKey._meta.db_table == "ops_app_apikey"
    assert ContentType.objects.filter(app_label="webhooks_app", model__in=["apikey", "replay"]).count() == 0
    assert ContentType.objects.get_for_model(ApiKey).app_label == "ops_app"


def test_it_keeps_the_history_of_events_and_error_groups_in_the_one_audit(before_move: Any) -> None:
    Organization = before_move.get_model("webhooks_app", "Organization")
    Source = before_move.get_model("webhooks_app", "Source")
    WebhookEvent = before_move.get_model("webhooks_app", "WebhookEvent")
    OperatorAction = before_move.get_model("webhooks_app", "OperatorAction")
    ErrorRecord = before_move.get_model("ops_app", "ErrorRecord")
    ErrorRecordAction = before_move.get_model("ops_app", "ErrorRecordAction")
    org = Organization.objects.create(name="Audited Firm", slug="audited-firm")
    source = Source.objects.create(organization=org, slug="audited", signing_secret_entries=[])
    event = WebhookEvent.objects.create(organization=org, source=source, idempotency_key="k1", payload={})
    OperatorAction.objects.create(
        event=event,
        kind="requeue_dead_letter",
        actor_label="ops.bob",
        via="api",
        note="n1",
        status_before="dead_letter",
    )
    record = ErrorRecord.objects.create(fingerprint="f" * 64, function="t", message="boom")
    ErrorRecordAction.objects.create(record=record, kind="resolve", actor_label="ops.anna", note="fixed")
    ErrorRecordAction.objects.create(record=record, kind="recurred", actor_label="system", note="again")
    before_move.get_model("auth", "Group").objects.get_or_create(name="Ops staff")

    migrate(leaf_nodes())

    event_history = AuditEntry.objects.filter(target_id=str(event.pk))
    assert list(event_history.values_list("act", "via", "actor_label", "status_before", "status_after", "note")) == [
        ("requeue_dead_letters", "api", "ops.bob", "dead_letter", "queued", "n1")
    ]
    assert event_history.get().target_type == ContentType.objects.get(app_label="webhooks_app", model="webhookevent")
    group_history = AuditEntry.objects.filter(target_type__model="errorrecord", target_id=str(record.pk))
    assert sorted(group_history.values_list("act", "via", "status_after")) == [
        ("recurred", "system", "open"),
        ("resolve_error_group", "admin", "resolved"),
    ]
    assert Group.objects.get(name="Ops staff").permissions.filter(codename="view_auditentry").exists()
