"""The acts on workflow runs and calls join the audit; the Ops staff group (0002) sees leads,
workflows, runs and calls, and may start runs, act on them and retry a call's failed actions."""

import importlib

from django.db import migrations, models

GRANTED = {
    "workflows_app": [
        "view_lead",
        "view_workflow",
        "view_workflowstep",
        "view_workflowrun",
        "view_stepexecution",
        "view_calllog",
        "view_disposition",
        "view_dispositionaction",
        "view_actionexecution",
        "start_workflowrun",
        "act_on_workflowrun",
        "retry_call_actions",
    ],
}


def ops_staff_grant(apps, schema_editor):
    created = importlib.import_module("ops_app.migrations.0002_ops_staff_group")
    created.ops_staff_group_grant(apps, schema_editor, GRANTED)


def ops_staff_revoke(apps, schema_editor):
    db = schema_editor.connection.alias
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.using(db).filter(name="Ops staff").first()
    if group is None:
        return
    for label, codenames in GRANTED.items():
        group.permissions.remove(
            *Permission.objects.using(db).filter(content_type__app_label=label, codename__in=codenames)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("ops_app", "0005_breaker"),
        ("workflows_app", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditentry",
            name="act",
            field=models.CharField(
                choices=[
                    ("retry_failed_items", "Retried failed items"),
                    ("requeue_dead_letters", "Requeued dead letter"),
                    ("mark_resolved", "Marked manually resolved"),
                    ("resolve_error_group", "Resolved"),
                    ("reopen_error_group", "Reopened"),
                    ("recurred", "Reopened by a new occurrence"),
                    ("retry_run_step", "Retried the run's step now"),
                    ("skip_run_step", "Skipped the run's step"),
                    ("reset_run_to_step", "Reset the run to a step"),
                    ("cancel_run", "Cancelled the run"),
                    ("retry_call_actions", "Retried failed disposition actions"),
                ],
                max_length=40,
            ),
        ),
        migrations.RunPython(ops_staff_grant, ops_staff_revoke),
    ]
