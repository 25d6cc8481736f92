# Indexes for the REST API's delivery stats, queue health and failure lists (ops_app.stats,
# ops_app.api). Each one names its reader in WebhookEvent.Meta.indexes.

from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    """CREATE INDEX CONCURRENTLY on PostgreSQL, so building an index on a large events table
    does not block intake for the duration; a plain CREATE INDEX elsewhere (SQLite)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.add_index(model, self.index, concurrently=True)
            else:
                schema_editor.add_index(model, self.index)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            if schema_editor.connection.vendor == "postgresql":
                schema_editor.remove_index(model, self.index, concurrently=True)
            else:
                schema_editor.remove_index(model, self.index)


class Migration(migrations.Migration):
    # CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("webhooks_app", "0004_api_keys"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="webhookevent",
            index=models.Index(
                fields=["organization", "received_at", "status", "event_type", "source", "attempts"],
                name="event_org_stats_idx",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="webhookevent",
            index=models.Index(fields=["organization", "completed_at", "status"], name="event_org_completed_idx"),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="webhookevent",
            index=models.Index(
                condition=models.Q(status__in=["received", "queued", "retry_scheduled"]),
                fields=["organization", "status", "updated_at"],
                name="event_org_open_idx",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="webhookevent",
            index=models.Index(
                condition=models.Q(status__in=["partial_failure", "failed", "dead_letter", "retry_scheduled"]),
                fields=["organization", "-received_at"],
                name="event_org_failures_idx",
            ),
        ),
    ]
