"""API keys and replays now belong to ops_app (its migration 0003 took the tables over): forget
them here, in the state only."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("webhooks_app", "0008_source_secrets_encrypted"),
        ("ops_app", "0003_api_keys_replays_from_webhooks_app"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Replay"),
                migrations.DeleteModel(name="ApiKey"),
            ],
            database_operations=[],
        ),
    ]
