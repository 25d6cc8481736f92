"""The outbound acts in the audit, and what Ops staff may do about notifications: see
endpoints, messages, deliveries and attempts; retry and recover; enable and disable endpoints
(change_endpoint; adding one, which makes a secret, stays with administrators)."""

import importlib

from django.db import migrations, models

ops_staff = importlib.import_module("ops_app.migrations.0002_ops_staff_group")

GRANTED = {
    "webhooks_app": [
        "view_endpoint",
        "change_endpoint",
        "view_outboundmessage",
        "view_delivery",
        "view_deliveryattempt",
        "retry_delivery",
    ],
}


def grant(apps, schema_editor):
    ops_staff.ops_staff_group_grant(apps, schema_editor, GRANTED)


class Migration(migrations.Migration):

    dependencies = [
        ('ops_app', '0009_retention_run'),
        ('webhooks_app', '0017_outbound'),
    ]

    operations = [
        migrations.AlterField(
            model_name='auditentry',
            name='act',
            field=models.CharField(choices=[('retry_failed_items', 'Retried failed items'), ('requeue_dead_letters', 'Requeued dead letter'), ('mark_resolved', 'Marked manually resolved'), ('resolve_error_group', 'Resolved'), ('reopen_error_group', 'Reopened'), ('recurred', 'Reopened by a new occurrence'), ('retry_delivery', 'Retried delivery'), ('retry_message', 'Retried message'), ('recover_endpoint', 'Recovered endpoint since a time'), ('enable_endpoint', 'Enabled endpoint'), ('disable_endpoint', 'Disabled endpoint')], max_length=40),
        ),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]
