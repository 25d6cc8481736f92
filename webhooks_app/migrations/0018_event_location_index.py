# The locations index for diagnostics (ops_app.diagnostics; see WebhookEvent.Meta.indexes).
# Built CONCURRENTLY on PostgreSQL so a large events table keeps taking intake meanwhile.

import importlib

import django.db.models.fields.json
import django.db.models.lookups
from django.db import migrations, models

AddIndexConcurrentlyOnPostgres = importlib.import_module(
    "webhooks_app.migrations.0005_event_stats_indexes"
).AddIndexConcurrentlyOnPostgres

LOCATION = django.db.models.fields.json.KeyTextTransform(
    "location", django.db.models.fields.json.KeyTextTransform("data", "payload")
)


class Migration(migrations.Migration):
    # CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("webhooks_app", "0017_outbound"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="webhookevent",
            index=models.Index(
                models.F("organization"),
                LOCATION,
                models.F("received_at"),
                condition=models.Q(django.db.models.lookups.IsNull(LOCATION, False)),
                name="event_org_location_idx",
            ),
        ),
    ]
