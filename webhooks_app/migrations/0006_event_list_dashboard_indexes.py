# Indexes for 1,000,000 events (measured by `make bench`, docs/performance.md): the admin's events
# list and the dashboard (ops_app.selectors), and delivery stats grouped in index order.
# Each one names its reader in WebhookEvent.Meta.indexes.

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import ProjectState, StateApps


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    """CREATE INDEX CONCURRENTLY on PostgreSQL, so building an index on a large events table
    does not block intake for the duration; a plain CREATE INDEX elsewhere (SQLite)."""

    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.add_index(model, self.index, concurrently=True)  # type: ignore[call-arg]
            else:
                schema_editor.add_index(model, self.index)

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.remove_index(model, self.index, concurrently=True)  # type: ignore[call-arg]
            else:
                schema_editor.remove_index(model, self.index)


class RemoveIndexConcurrentlyOnPostgres(migrations.RemoveIndex):
    """DROP INDEX CONCURRENTLY on PostgreSQL (no lock on the events table); plain elsewhere."""

    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.remove_index(model, index, concurrently=True)  # type: ignore[call-arg]
            else:
                schema_editor.remove_index(model, index)

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.add_index(model, index, concurrently=True)  # type: ignore[call-arg]
            else:
                schema_editor.add_index(model, index)


# Delivery stats (ops_app.stats) group an organization's window by (UTC day, status, event type,
# source). With the day as the second key, the 30-day range is read in grouping order: a streaming
# GroupAggregate over an index-only scan, no hash table over half a million rows. Every range
# narrows on the day first, then on received_at (included), so this index replaces
# event_org_stats_idx. date_bin exists from PostgreSQL 14 on (production runs 16) and not in
# SQLite, and Meta.indexes cannot declare an index for one database only (SQLite would fail to
# rebuild the table around it), so it is made here. Without it (SQLite, the embedded default;
# PostgreSQL < 14) ops_app.stats keeps its date_trunc query, read through event_org_received_idx.
DAY_STATS_INDEX = "event_org_day_stats_idx"
DAY_STATS_SQL = (
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {DAY_STATS_INDEX} ON webhooks_app_webhookevent "
    "(organization_id, date_bin('1 day'::interval, received_at, '1970-01-01 00:00:00+00'::timestamptz), "
    "status, event_type, source_id) INCLUDE (attempts, received_at)"
)


def _has_date_bin(schema_editor: BaseDatabaseSchemaEditor) -> bool:
    connection = schema_editor.connection
    return connection.vendor == "postgresql" and bool(connection.pg_version >= 140000)  # type: ignore[attr-defined]


def day_stats_index_create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if _has_date_bin(schema_editor):
        schema_editor.execute(DAY_STATS_SQL)


def day_stats_index_drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if _has_date_bin(schema_editor):
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {DAY_STATS_INDEX}")


class Migration(migrations.Migration):
    # CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("webhooks_app", "0005_event_stats_indexes"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="webhookevent",
            index=models.Index(fields=["-received_at", "-id"], name="event_received_idx"),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="webhookevent",
            index=models.Index(
                condition=models.Q(action__in=["partial_failure", "manually_resolved"]),
                fields=["received_at", "action", "tasks_failed"],
                name="event_partial_failures_idx",
            ),
        ),
        migrations.RunPython(day_stats_index_create, day_stats_index_drop, elidable=False),
        RemoveIndexConcurrentlyOnPostgres(model_name="webhookevent", name="event_org_stats_idx"),
    ]
