"""API keys and replays move from webhooks_app to the ops room, rows and all: the state moves
here (webhooks_app 0007 forgets them), the tables are renamed, and the content types follow so
permissions and admin log entries stay attached."""

import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models

MOVED = ("apikey", "replay")


def content_types_move(apps, schema_editor):
    # The database being migrated, which need not be the default one.
    db = schema_editor.connection.alias
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if ContentType.objects.using(db).filter(app_label="ops_app", model=model).exists():
            continue
        ContentType.objects.using(db).filter(app_label="webhooks_app", model=model).update(app_label="ops_app")


def content_types_move_back(apps, schema_editor):
    # The database being migrated, which need not be the default one.
    db = schema_editor.connection.alias
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if ContentType.objects.using(db).filter(app_label="webhooks_app", model=model).exists():
            continue
        ContentType.objects.using(db).filter(app_label="ops_app", model=model).update(app_label="webhooks_app")


class Migration(migrations.Migration):

    dependencies = [
        ("ops_app", "0002_ops_staff_group"),
        ("webhooks_app", "0006_event_list_dashboard_indexes"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ApiKey',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(help_text="What uses the key, e.g. 'Grafana dashboard'", max_length=100)),
                        ('prefix', models.CharField(editable=False, help_text='Not secret: names the key', max_length=20, unique=True)),
                        ('key_hash', models.CharField(editable=False, max_length=64, unique=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('last_used_at', models.DateTimeField(blank=True, null=True)),
                        ('revoked_at', models.DateTimeField(blank=True, null=True)),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_keys', to='webhooks_app.organization')),
                    ],
                    options={
                        'verbose_name': 'API key',
                        'db_table': 'webhooks_app_apikey',
                        'ordering': ['organization', '-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='Replay',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('requested_by', models.CharField(help_text='API key prefix or username, as audited', max_length=200)),
                        ('statuses', models.JSONField(help_text='Event statuses to retry')),
                        ('error_code', models.CharField(blank=True, max_length=50)),
                        ('received_after', models.DateTimeField(blank=True, null=True)),
                        ('received_before', models.DateTimeField(blank=True, null=True)),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('running', 'Running'), ('completed', 'Completed'), ('cancelled', 'Cancelled'), ('failed', 'Failed')], default='pending', max_length=20)),
                        ('matched_events', models.PositiveIntegerField(help_text='Events matching when the replay was requested')),
                        ('matched_items', models.PositiveIntegerField(help_text='Failed or pending items of those events')),
                        ('done', models.PositiveIntegerField(default=0, help_text='Events queued for a retry')),
                        ('failed', models.PositiveIntegerField(default=0, help_text='Events that had nothing left to retry when reached')),
                        ('batch_size', models.PositiveIntegerField()),
                        ('events_per_second', models.FloatField()),
                        ('cursor_received_at', models.DateTimeField(blank=True, null=True)),
                        ('cursor_event_id', models.UUIDField(blank=True, null=True)),
                        ('last_error', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('api_key', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='replays', to='ops_app.apikey')),
                        ('organization', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='replays', to='webhooks_app.organization')),
                        ('source', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='webhooks_app.source')),
                    ],
                    options={
                        'ordering': ['-created_at'],
                        'db_table': 'webhooks_app_replay',
                        'indexes': [models.Index(fields=['organization', '-created_at'], name='replay_org_created_idx')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterModelTable(name="apikey", table=None),
        migrations.AlterModelTable(name="replay", table=None),
        migrations.RunPython(content_types_move, content_types_move_back),
    ]
