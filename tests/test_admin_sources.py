"""The source admin: secrets are shown once, when made, then only as hints; the connector token
is write-only; rotating needs the change permission, which Ops staff do not have."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import SourceFactory
from tests.support.admin import login, make_user, ops_staff_group_ensure
from webhooks_app.models import Source

pytestmark = pytest.mark.django_db

TOKEN = "clio-token-0b8f2a64e1"
ADD_URL = "/admin/webhooks_app/source/add/"


def change_url(source: Source) -> str:
    return f"/admin/webhooks_app/source/{source.pk}/change/"


def rotate_url(source: Source) -> str:
    return f"/admin/webhooks_app/source/{source.pk}/rotate-secret/"


@pytest.fixture
def admin_client_(db) -> Client:
    return login(User.objects.create_superuser("root", password="correct horse battery"))


@pytest.fixture
def ops(db) -> Client:
    return login(make_user("ops.olga", group=ops_staff_group_ensure()))


def form_data(source: Source | None = None, **changes: Any) -> dict[str, Any]:
    data = {
        "organization": source.organization_id if source else "",
        "slug": source.slug if source else "",
        "kind": "clio",
        "enabled": "on",
        "max_payload_bytes": 1048576,
        "signing_scheme": "standard_webhooks",
        "signature_header": "X-Signature",
        "timestamp_tolerance_seconds": 300,
        "max_attempts": 3,
        "backoff_base_seconds": 2.0,
        "backoff_factor": 2.0,
        "connector": "clio_http",
        "connector_base_url": "https://clio.example/api",
        "new_connector_token": "",
    }
    return {**data, **changes}


def test_adding_a_source_shows_its_new_secret_once_and_never_again(admin_client_, organization):
    response = admin_client_.post(
        ADD_URL, form_data(organization=organization.pk, slug="new-src", new_connector_token=TOKEN)
    )

    source = Source.objects.get(slug="new-src")
    secret = source.signing_secrets[0]
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count(secret) == 1
    assert "no-store" in response["Cache-Control"]
    assert TOKEN not in page
    assert source.connector_token == TOKEN
    for url in (change_url(source), "/admin/webhooks_app/source/", f"{change_url(source)[:-7]}history/"):
        again = admin_client_.get(url).content.decode()
        assert secret not in again
        assert TOKEN not in again
    assert f"whsec_\u2026{secret[-4:]}" in admin_client_.get(change_url(source)).content.decode()


def test_the_token_field_is_write_only_empty_keeps_a_value_replaces_and_remove_clears(admin_client_, organization):
    source = SourceFactory(organization=organization, connector="clio_http", connector_base_url="https://c.example")
    source.connector_token = TOKEN
    source.save()

    page = admin_client_.get(change_url(source)).content.decode()
    assert TOKEN not in page
    assert "set (write-only)" in page

    admin_client_.post(change_url(source), form_data(source))
    source.refresh_from_db()
    assert source.connector_token == TOKEN

    admin_client_.post(change_url(source), form_data(source, new_connector_token="replacement-token"))
    source.refresh_from_db()
    assert source.connector_token == "replacement-token"

    both = admin_client_.post(
        change_url(source), form_data(source, new_connector_token="x", remove_connector_token="on")
    )
    assert both.status_code == 200
    assert "not both" in both.content.decode()
    source.refresh_from_db()
    assert source.connector_token == "replacement-token"

    admin_client_.post(change_url(source), form_data(source, remove_connector_token="on"))
    source.refresh_from_db()
    assert (source.connector_token, source.connector_token_encrypted) == ("", "")


def test_editing_a_source_keeps_its_secrets(admin_client_, source):
    before = source.signing_secrets

    admin_client_.post(change_url(source), form_data(source, max_attempts=5))

    source.refresh_from_db()
    assert (source.max_attempts, source.signing_secrets) == (5, before)


def test_rotating_from_the_source_page_confirms_then_shows_the_new_secret_once(admin_client_, source):
    old = source.signing_secrets[0]

    assert "Rotate signing secret" in admin_client_.get(change_url(source)).content.decode()
    confirm = admin_client_.get(rotate_url(source))
    assert confirm.status_code == 200
    assert Source.objects.get(pk=source.pk).signing_secrets == [old]
    done = admin_client_.post(rotate_url(source))

    source.refresh_from_db()
    new, kept = source.signing_secrets
    assert kept == old
    assert done.content.decode().count(new) == 1
    assert old not in done.content.decode()
    assert "24 hours" in done.content.decode()
    assert new not in admin_client_.get(change_url(source)).content.decode()


def test_the_rotate_action_rotates_each_selected_source(admin_client_, organization):
    first, second, untouched = (SourceFactory(organization=organization) for _ in range(3))
    before = untouched.signing_secret_entries

    response = admin_client_.post(
        "/admin/webhooks_app/source/",
        {"action": "rotate_signing_secrets", "_selected_action": [first.pk, second.pk]},
    )

    page = response.content.decode()
    for source in (first, second):
        source.refresh_from_db()
        assert len(source.signing_secrets) == 2
        assert page.count(source.signing_secrets[0]) == 1
    untouched.refresh_from_db()
    assert untouched.signing_secret_entries == before


def test_ops_staff_see_sources_masked_and_cannot_rotate_or_set_tokens(ops, source):
    secret = source.signing_secrets[0]
    before = source.signing_secret_entries

    page = ops.get(change_url(source))
    listing = ops.get("/admin/webhooks_app/source/")
    rotate_get, rotate_post = ops.get(rotate_url(source)), ops.post(rotate_url(source))
    action = ops.post(
        "/admin/webhooks_app/source/", {"action": "rotate_signing_secrets", "_selected_action": [source.pk]}
    )

    assert page.status_code == 200
    assert secret not in page.content.decode()
    assert "Rotate signing secret" not in page.content.decode()
    assert "new_connector_token" not in page.content.decode()
    assert "rotate_signing_secrets" not in listing.content.decode()
    assert (rotate_get.status_code, rotate_post.status_code) == (403, 403)
    assert secret not in action.content.decode()
    source.refresh_from_db()
    assert source.signing_secret_entries == before


RETELL_KEY = "key_retell_0123456789abcdef"  # a Retell API key: Retell signs with it


def test_a_retell_source_needs_the_providers_key_and_never_shows_it(admin_client_, organization):
    missing = admin_client_.post(
        ADD_URL, form_data(organization=organization.pk, slug="calls", kind="retell", signing_scheme="retell")
    )
    assert missing.status_code == 200 and "enter it here" in missing.content.decode()
    assert not Source.objects.filter(slug="calls").exists()

    response = admin_client_.post(
        ADD_URL,
        form_data(
            organization=organization.pk,
            slug="calls",
            kind="retell",
            signing_scheme="retell",
            provider_secret=RETELL_KEY,
        ),
    )

    source = Source.objects.get(slug="calls")
    assert response.status_code == 302  # nothing generated, so no page showing a secret
    assert source.signing_secrets == [RETELL_KEY]
    for url in (change_url(source), "/admin/webhooks_app/source/"):
        assert RETELL_KEY not in admin_client_.get(url).content.decode()


def test_a_retell_source_is_not_rotated_to_a_generated_secret(admin_client_, organization):
    source = SourceFactory(
        organization=organization, kind="retell", signing_scheme="retell", signing_secrets=[RETELL_KEY]
    )

    response = admin_client_.post(f"{change_url(source)[:-7]}rotate-secret/", follow=True)

    source.refresh_from_db()
    assert source.signing_secrets == [RETELL_KEY]
    assert "Retell signs with your Retell API key" in response.content.decode()


def test_a_providers_key_given_on_edit_replaces_the_signing_secrets(admin_client_, source):
    response = admin_client_.post(change_url(source), form_data(source, provider_secret="vapi-server-secret-42"))

    source.refresh_from_db()
    assert response.status_code == 302
    assert source.signing_secrets == ["vapi-server-secret-42"]
