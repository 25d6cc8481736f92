"""Signing secrets and connector tokens: encrypted at rest, verified only while valid, rotated
with a grace period, re-encrypted under a new key, and shown to people once."""

import io
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.utils import timezone

from tests.factories import SourceFactory
from tests.support.signing import encode, hmac_headers, matter_payload, standard_headers
from webhooks_app.encryption import SecretUnreadable, secret_decrypt, secret_encrypt
from webhooks_app.models import SigningScheme, Source
from webhooks_app.services.sources import source_secret_rotate

pytestmark = pytest.mark.django_db

TOKEN = "clio-token-7d1e0c5b9a"


def stored_row(source: Source) -> str:
    """Everything the database holds for the source, as one string."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(s)::text FROM webhooks_app_source s WHERE id = %s", [source.pk])
        return str(cursor.fetchone()[0])


def post_signed(client, source: Source, secret: str):
    body = encode(matter_payload())
    return client.post(
        f"/webhooks/{source.slug}/", data=body, content_type="application/json", headers=standard_headers(secret, body)
    )


# --- At rest ------------------------------------------------------------------------------------


def test_it_stores_neither_the_secret_nor_the_token_in_plaintext(organization):
    source = SourceFactory(organization=organization)
    source.connector_token = TOKEN
    source.save()
    secret = source.signing_secrets[0]

    row = stored_row(source)

    assert secret not in row
    assert secret.removeprefix("whsec_") not in row
    assert TOKEN not in row
    fresh = Source.objects.get(pk=source.pk)
    assert (fresh.signing_secrets, fresh.connector_token) == ([secret], TOKEN)


def test_the_connector_sends_the_decrypted_token_downstream(organization, fake_clio):
    from webhooks_app.connectors import TaskSpec, connector_for

    fake_clio.reset()
    source = SourceFactory(organization=organization, connector="clio_http", connector_base_url=fake_clio.url)
    source.connector_token = TOKEN
    source.save()
    spec = TaskSpec(
        organization_id=organization.pk, entity_id="1001", title="Call client", description="",
        assignee="csc.naples", due_at=None, idempotency_key="evt:1",
    )  # fmt: skip

    connector_for(Source.objects.get(pk=source.pk)).create_task(spec)

    assert fake_clio.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"


def test_a_key_rotation_reencrypts_everything_under_the_new_key(organization, caplog):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(SECRETS_ENCRYPTION_KEYS=[old_key]):
        source = SourceFactory(organization=organization)
        source.connector_token = TOKEN
        source.save()
        secret = source.signing_secrets[0]
    with override_settings(SECRETS_ENCRYPTION_KEYS=[new_key]):
        # Dropping the old key too early: nothing verifies, and the token is unreadable.
        assert Source.objects.get(pk=source.pk).signing_secrets == []
        unreadable = [r for r in caplog.records if getattr(r, "error_code", "") == "ERR_SECRET_UNREADABLE"]
        assert len(unreadable) == 1
        assert secret not in unreadable[0].getMessage()
        with pytest.raises(SecretUnreadable):
            _ = Source.objects.get(pk=source.pk).connector_token
        with pytest.raises(CommandError, match="keep the old key listed"):
            call_command("reencrypt_secrets", stdout=io.StringIO())
    with override_settings(SECRETS_ENCRYPTION_KEYS=[new_key, old_key]):
        out = io.StringIO()
        call_command("reencrypt_secrets", stdout=out)
        assert "1 source(s)" in out.getvalue()
    with override_settings(SECRETS_ENCRYPTION_KEYS=[new_key]):
        fresh = Source.objects.get(pk=source.pk)
        assert (fresh.signing_secrets, fresh.connector_token) == ([secret], TOKEN)


def test_secrets_stored_under_the_derived_key_move_to_a_configured_key(organization, settings):
    settings.SECRETS_ENCRYPTION_KEYS = []
    source = SourceFactory(organization=organization)
    secret = source.signing_secrets[0]
    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    assert Source.objects.get(pk=source.pk).signing_secrets == [secret]  # still read, before re-encrypting

    call_command("reencrypt_secrets", stdout=io.StringIO())
    settings.SECRET_KEY = "a-new-secret-key"

    assert Source.objects.get(pk=source.pk).signing_secrets == [secret]


def test_without_configured_keys_the_key_comes_from_secret_key(settings):
    settings.SECRETS_ENCRYPTION_KEYS = []
    token = secret_encrypt("s3cret")

    settings.SECRET_KEY = "another-secret-key"

    with pytest.raises(SecretUnreadable):
        secret_decrypt(token)


def test_a_malformed_key_is_a_configuration_error_that_does_not_print_the_key(settings):
    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), "not-a-fernet-key-at-all"]

    with pytest.raises(ImproperlyConfigured) as raised:
        secret_encrypt("x")

    assert "key 2" in str(raised.value)
    assert "not-a-fernet-key-at-all" not in str(raised.value)


# --- Rotation -----------------------------------------------------------------------------------


def test_the_old_secret_verifies_during_the_grace_period_and_not_after(client, organization):
    source = SourceFactory(organization=organization)
    old = source.signing_secrets[0]

    new = source_secret_rotate(source_id=source.pk, grace=timedelta(hours=2))

    assert new != old
    assert Source.objects.get(pk=source.pk).signing_secrets == [new, old]
    assert post_signed(client, source, old).status_code == 202
    assert post_signed(client, source, new).status_code == 202

    source.refresh_from_db()
    entries = source.signing_secret_entries
    entries[1]["expires_at"] = (timezone.now() - timedelta(seconds=1)).isoformat()
    source.save()

    assert post_signed(client, source, old).status_code == 401
    assert post_signed(client, source, new).status_code == 202


def test_a_second_rotation_drops_expired_secrets_and_never_lengthens_a_grace(organization):
    source = SourceFactory(organization=organization)
    first = source.signing_secrets[0]
    second = source_secret_rotate(source_id=source.pk, grace=timedelta(hours=1))
    third = source_secret_rotate(source_id=source.pk, grace=timedelta(hours=48))

    source.refresh_from_db()
    ends = {e.hint[-4:]: e.expires_at for e in source.signing_secret_list}

    assert source.signing_secrets == [third, second, first]
    assert ends[third[-4:]] is None
    assert ends[first[-4:]] < timezone.now() + timedelta(hours=2)  # kept its 1-hour end
    assert ends[second[-4:]] > timezone.now() + timedelta(hours=47)

    source_secret_rotate(source_id=source.pk, grace=timedelta(0))
    source.refresh_from_db()
    assert len(source.signing_secret_entries) == 1


def test_hmac_sources_rotate_to_a_hex_secret_that_verifies(client, organization):
    source = SourceFactory(organization=organization, signing_scheme=SigningScheme.HMAC_SHA256)

    new = source_secret_rotate(source_id=source.pk, grace=timedelta(0))

    body = encode(matter_payload())
    response = client.post(
        f"/webhooks/{source.slug}/", data=body, content_type="application/json", headers=hmac_headers(new, body)
    )
    assert len(new) == 64
    assert response.status_code == 202


def test_rotate_source_secret_prints_the_new_secret_once_and_keeps_the_old_for_the_grace(client, organization):
    source = SourceFactory(organization=organization)
    old = source.signing_secrets[0]
    out = io.StringIO()

    call_command("rotate_source_secret", "--source", source.slug, "--grace-hours", "3", stdout=out)

    source.refresh_from_db()
    new, kept = source.signing_secrets
    assert kept == old
    assert out.getvalue().count(new) == 1
    assert old not in out.getvalue()
    assert "3:00:00" in out.getvalue()
    assert post_signed(client, source, old).status_code == 202


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--source", "nope"], "no source with slug 'nope'"), (["--grace-hours", "-1"], "--grace-hours must be")],
)
def test_rotate_source_secret_refuses_bad_input_and_changes_nothing(organization, args, message):
    source = SourceFactory(organization=organization, slug="known")
    before = source.signing_secret_entries
    options = {"--source": "known", **dict(zip(args[::2], args[1::2], strict=True))}

    with pytest.raises(CommandError, match=message):
        call_command("rotate_source_secret", *[p for pair in options.items() for p in pair])

    source.refresh_from_db()
    assert source.signing_secret_entries == before


# --- The migration ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_encrypts_existing_plaintext_secrets_and_tokens():
    executor = MigrationExecutor(connection)
    before, after = (
        [("webhooks_app", "0007_event_raw_body")],
        [("webhooks_app", "0008_source_secrets_encrypted")],
    )
    executor.migrate(before)
    try:
        old_apps = executor.loader.project_state(before).apps
        OldOrganization = old_apps.get_model("webhooks_app", "Organization")
        OldSource = old_apps.get_model("webhooks_app", "Source")
        org = OldOrganization.objects.create(name="Legacy", slug="legacy")
        OldSource.objects.create(
            organization=org, slug="legacy-src", signing_secrets=["whsec_bGVnYWN5LXNlY3JldC0xMjM0NTY3OA=="],
            connector_token=TOKEN,
        )  # fmt: skip
        executor = MigrationExecutor(connection)
        executor.migrate(after)
    finally:
        MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())

    source = Source.objects.get(slug="legacy-src")
    row = stored_row(source)
    assert source.signing_secrets == ["whsec_bGVnYWN5LXNlY3JldC0xMjM0NTY3OA=="]
    assert source.connector_token == TOKEN
    assert "bGVnYWN5LXNlY3JldC0xMjM0NTY3OA" not in row
    assert TOKEN not in row


# --- Configuration checks -----------------------------------------------------------------------


def test_a_malformed_key_fails_the_system_check_and_an_unset_one_is_flagged_for_deploys(settings):
    from django.core.checks import run_checks

    settings.SECRETS_ENCRYPTION_KEYS = []
    assert "mendhook.W001" in {m.id for m in run_checks(include_deployment_checks=True)}
    assert "mendhook.W001" not in {m.id for m in run_checks()}

    settings.SECRETS_ENCRYPTION_KEYS = ["bad"]
    assert "mendhook.E001" in {m.id for m in run_checks()}

    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    assert not {"mendhook.E001", "mendhook.W001"} & {m.id for m in run_checks(include_deployment_checks=True)}
