"""The "Ops staff" group: people who resolve partial failures in the admin. They see events and
what explains them, retry and resolve events, fix assignee rules, and resolve error records.
No delete anywhere, and no edit of events or payloads (the admin offers none either)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Ops staff"

PERMISSIONS = {
    "webhooks_app": [
        "view_webhookevent",
        "view_eventitem",
        "view_processingattempt",
        "view_operatoraction",
        "view_organization",
        "view_source",
        "view_tasktemplate",
        "view_assigneerule",
        # The usual fix for a partial failure is the missing assignee rule (a CSC for naples).
        "add_assigneerule",
        "change_assigneerule",
        "view_localtask",
        "retry_event",
        "resolve_event",
    ],
    "ops_app": [
        "view_errorrecord",
        "view_errorrecordaction",
        "resolve_errorrecord",
    ],
}


def ops_staff_group_create(apps, schema_editor):
    ops_staff_group_grant(apps, schema_editor, PERMISSIONS)


def ops_staff_group_grant(apps, schema_editor, permissions):
    # The database being migrated, which need not be the default one.
    db = schema_editor.connection.alias
    # Permissions are normally created by post_migrate, after every migration has run; on a
    # fresh database they do not exist yet here, so create them now (idempotent).
    for label in permissions:
        app_config = apps.get_app_config(label)
        # The migration state's app config has no models module, which create_permissions
        # takes to mean "no models"; point it at something truthy for the call. (Restored
        # after, since with the real registry this is the real app config.)
        original = getattr(app_config, "models_module", None)
        app_config.models_module = original or True
        try:
            create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
        finally:
            app_config.models_module = original

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.using(db).get_or_create(name=GROUP)
    for label, codenames in permissions.items():
        found = list(Permission.objects.using(db).filter(content_type__app_label=label, codename__in=codenames))
        missing = set(codenames) - {p.codename for p in found}
        if missing:
            raise RuntimeError(f"permissions not found for {label}: {sorted(missing)}")
        group.permissions.add(*found)


def ops_staff_group_delete(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("ops_app", "0001_initial"),
        ("webhooks_app", "0003_event_permissions"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(ops_staff_group_create, ops_staff_group_delete)]
