"""Acts on events are audited in ops_app.AuditEntry now (ops_app 0004 copied the rows)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("webhooks_app", "0009_api_keys_replays_to_ops_app"),
        ("ops_app", "0004_audit_entry"),
    ]

    operations = [
        migrations.DeleteModel(name="OperatorAction"),
    ]
