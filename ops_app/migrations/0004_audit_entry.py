"""One audit for every operator act: AuditEntry replaces webhooks_app.OperatorAction (events) and
ErrorRecordAction (error groups). Their rows are copied over (and back, when migrating back);
webhooks_app 0008 then drops OperatorAction."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations, models

EVENT_ACTS = {"retry_failed": "retry_failed_items", "requeue_dead_letter": "requeue_dead_letters", "resolve": "mark_resolved"}
EVENT_STATUS_AFTER = {"retry_failed": "queued", "requeue_dead_letter": "queued", "resolve": "manually_resolved"}
GROUP_ACTS = {"resolve": "resolve_error_group", "reopen": "reopen_error_group", "recurred": "recurred"}
# The Ops staff group (0002) sees the one audit instead of the two it replaces.
GRANTED = {"ops_app": ["view_auditentry"]}
RETIRED = {"webhooks_app": ["view_operatoraction"], "ops_app": ["view_errorrecordaction"]}
GROUP_STATUSES = {"resolve": ("open", "resolved"), "reopen": ("resolved", "open"), "recurred": ("resolved", "open")}


def _content_type(apps, db, app_label, model):
    ContentType = apps.get_model("contenttypes", "ContentType")
    return ContentType.objects.using(db).get_or_create(app_label=app_label, model=model)[0]


def audit_entries_copy(apps, schema_editor):
    # The database being migrated, which need not be the default one.
    db = schema_editor.connection.alias
    AuditEntry = apps.get_model("ops_app", "AuditEntry")
    OperatorAction = apps.get_model("webhooks_app", "OperatorAction")
    ErrorRecordAction = apps.get_model("ops_app", "ErrorRecordAction")
    event_type = _content_type(apps, db, "webhooks_app", "webhookevent")
    group_type = _content_type(apps, db, "ops_app", "errorrecord")
    entries = [
        AuditEntry(
            actor_id=a.actor_id,
            actor_label=a.actor_label,
            via=a.via or "admin",
            act=EVENT_ACTS[a.kind],
            target_type=event_type,
            target_id=str(a.event_id),
            note=a.note,
            status_before=a.status_before,
            status_after=EVENT_STATUS_AFTER[a.kind],
            created_at=a.created_at,
        )
        for a in OperatorAction.objects.using(db).order_by("id").iterator()
    ]
    entries += [
        AuditEntry(
            actor_id=a.actor_id,
            actor_label=a.actor_label,
            via="system" if a.kind == "recurred" else "admin",
            act=GROUP_ACTS[a.kind],
            target_type=group_type,
            target_id=str(a.record_id),
            note=a.note,
            status_before=GROUP_STATUSES[a.kind][0],
            status_after=GROUP_STATUSES[a.kind][1],
            created_at=a.created_at,
        )
        for a in ErrorRecordAction.objects.using(db).order_by("id").iterator()
    ]
    AuditEntry.objects.using(db).bulk_create(entries, batch_size=1000)


def audit_entries_copy_back(apps, schema_editor):
    # The database being migrated, which need not be the default one.
    db = schema_editor.connection.alias
    AuditEntry = apps.get_model("ops_app", "AuditEntry")
    OperatorAction = apps.get_model("webhooks_app", "OperatorAction")
    ErrorRecordAction = apps.get_model("ops_app", "ErrorRecordAction")
    kinds = {v: k for k, v in EVENT_ACTS.items()}
    group_kinds = {v: k for k, v in GROUP_ACTS.items()}
    for entry in AuditEntry.objects.using(db).select_related("target_type").order_by("id").iterator():
        model = entry.target_type.model
        if model == "webhookevent" and entry.act in kinds:
            action = OperatorAction.objects.using(db).create(
                event_id=entry.target_id,
                kind=kinds[entry.act],
                actor_id=entry.actor_id,
                actor_label=entry.actor_label,
                via=entry.via,
                note=entry.note,
                status_before=entry.status_before,
            )
            OperatorAction.objects.using(db).filter(id=action.id).update(created_at=entry.created_at)
        elif model == "errorrecord" and entry.act in group_kinds:
            ErrorRecordAction.objects.using(db).create(
                record_id=int(entry.target_id),
                kind=group_kinds[entry.act],
                actor_id=entry.actor_id,
                actor_label=entry.actor_label,
                note=entry.note,
                created_at=entry.created_at,
            )


def ops_staff_may_view_audit(apps, schema_editor):
    # The database being migrated, which need not be the default one.
    db = schema_editor.connection.alias
    app_config = apps.get_app_config("ops_app")
    original = getattr(app_config, "models_module", None)
    app_config.models_module = original or True  # see 0002: the state's app config has none
    try:
        create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
    finally:
        app_config.models_module = original
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    granted = [
        Permission.objects.using(db).get(content_type__app_label=label, codename=codename)
        for label, codenames in GRANTED.items()
        for codename in codenames
    ]
    for group in Group.objects.using(db).filter(name="Ops staff"):
        group.permissions.add(*granted)


class Migration(migrations.Migration):

    dependencies = [
        ("ops_app", "0003_api_keys_replays_from_webhooks_app"),
        ("webhooks_app", "0009_api_keys_replays_to_ops_app"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("actor_label", models.CharField(help_text="Who, as shown: username or API key name", max_length=200)),
                ("via", models.CharField(choices=[("admin", "Admin"), ("api", "API"), ("cli", "Command line"), ("system", "System")], max_length=10)),
                ("act", models.CharField(choices=[("retry_failed_items", "Retried failed items"), ("requeue_dead_letters", "Requeued dead letter"), ("mark_resolved", "Marked manually resolved"), ("resolve_error_group", "Resolved"), ("reopen_error_group", "Reopened"), ("recurred", "Reopened by a new occurrence")], max_length=40)),
                ("target_id", models.CharField(max_length=64)),
                ("note", models.TextField(blank=True)),
                ("status_before", models.CharField(blank=True, max_length=30)),
                ("status_after", models.CharField(blank=True, max_length=30)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("actor", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                ("target_type", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="+", to="contenttypes.contenttype")),
            ],
            options={
                "verbose_name_plural": "audit entries",
                "ordering": ["-created_at", "-id"],
                "indexes": [models.Index(fields=["target_type", "target_id", "-created_at"], name="audit_target_idx")],
            },
        ),
        migrations.RunPython(audit_entries_copy, audit_entries_copy_back),
        migrations.RunPython(ops_staff_may_view_audit, migrations.RunPython.noop),
        migrations.DeleteModel(name="ErrorRecordAction"),
    ]
