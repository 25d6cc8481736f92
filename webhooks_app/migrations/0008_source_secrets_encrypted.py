"""Signing secrets and connector tokens encrypted at rest; the plaintext columns go.

Existing secrets stay valid with no expiry (as before), each now a Fernet token plus a hint."""

from django.db import migrations, models
from django.utils import timezone

from webhooks_app.encryption import secret_decrypt, secret_encrypt
from webhooks_app.models.sources import secret_hint


def secrets_encrypt(apps, schema_editor):
    Source = apps.get_model("webhooks_app", "Source")
    now = timezone.now().isoformat()
    for source in Source.objects.using(schema_editor.connection.alias).iterator():
        source.signing_secret_entries = [
            {"ciphertext": secret_encrypt(s), "hint": secret_hint(s), "created_at": now, "expires_at": None}
            for s in source.signing_secrets
            if s
        ]
        source.connector_token_encrypted = secret_encrypt(source.connector_token) if source.connector_token else ""
        source.save(update_fields=["signing_secret_entries", "connector_token_encrypted"])


def secrets_decrypt(apps, schema_editor):
    # Back to plaintext: only for undoing this migration on a development database. Secrets
    # already expired are left behind, as they no longer verified anyway.
    Source = apps.get_model("webhooks_app", "Source")
    now = timezone.now().isoformat()
    for source in Source.objects.using(schema_editor.connection.alias).iterator():
        entries = source.signing_secret_entries
        source.signing_secrets = [
            secret_decrypt(e["ciphertext"]) for e in entries if e["expires_at"] is None or e["expires_at"] > now
        ]
        token = source.connector_token_encrypted
        source.connector_token = secret_decrypt(token) if token else ""
        source.save(update_fields=["signing_secrets", "connector_token"])


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks_app", "0007_event_raw_body"),
    ]

    operations = [
        migrations.AddField(
            model_name="source",
            name="signing_secret_entries",
            field=models.JSONField(default=list, editable=False),
        ),
        migrations.AddField(
            model_name="source",
            name="connector_token_encrypted",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.RunPython(secrets_encrypt, secrets_decrypt, elidable=False),
        migrations.RemoveField(model_name="source", name="signing_secrets"),
        migrations.RemoveField(model_name="source", name="connector_token"),
    ]
