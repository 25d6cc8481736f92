"""Who may call the REST API: API keys (hashed, revocable, shown once), staff sessions, throttles."""

import hashlib
import io
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from django.utils import timezone

from ops_app.models import ApiKey
from tests.support.api import Api, api_for, other_org_source
from tests.support.events import make_event
from webhooks_app.models import EventStatus

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_api_cache")]


# --- Keys ---------------------------------------------------------------------------------------


def test_a_request_without_a_key_is_refused_with_401_and_a_bearer_challenge():
    response = Api(None).get("failures")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer mhk_0000_nope", "Bearer", "Bearer two words", "Bearer not-even-ours"],
)
def test_a_malformed_or_unknown_key_is_refused(organization, authorization):
    api_for(organization)  # a real key exists; these are not it
    response = Client().get("/api/v1/failures", headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_revoked_key_stops_working(organization):
    key, raw_key = ApiKey.issue(organization=organization, name="dashboard")
    assert Api(raw_key).get("failures").status_code == 200

    key.revoke(now=timezone.now())

    assert Api(raw_key).get("failures").status_code == 401


def test_only_a_hash_and_a_short_prefix_of_a_key_are_stored(organization):
    key, raw_key = ApiKey.issue(organization=organization, name="dashboard")

    stored = ApiKey.objects.filter(id=key.id).values().get()
    assert raw_key not in {str(v) for v in stored.values()}
    assert stored["key_hash"] == hashlib.sha256(raw_key.encode()).hexdigest()
    assert raw_key.startswith(stored["prefix"] + "_")
    assert len(raw_key) > 50  # 256 random bits behind the prefix


def test_last_used_is_written_at_most_once_a_minute(organization):
    key, raw_key = ApiKey.issue(organization=organization, name="dashboard")
    api = Api(raw_key)

    api.get("failures")
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None

    api.get("failures")
    key.refresh_from_db()
    assert key.last_used_at == first  # within the minute: no write

    ApiKey.objects.filter(id=key.id).update(last_used_at=first - timedelta(minutes=2))
    api.get("failures")
    key.refresh_from_db()
    assert key.last_used_at > first


def test_the_create_api_key_command_prints_a_working_key_once(organization):
    out, err = io.StringIO(), io.StringIO()

    call_command("create_api_key", "--org", organization.slug, "--name", "grafana", stdout=out, stderr=err)

    raw_key = out.getvalue().strip()
    key = ApiKey.objects.get(organization=organization)
    assert (key.name, raw_key.startswith(key.prefix)) == ("grafana", True)
    assert key.prefix in err.getvalue() and raw_key not in err.getvalue()
    assert Api(raw_key).get("failures").status_code == 200


def test_the_create_api_key_command_refuses_an_unknown_organization(db):
    with pytest.raises(CommandError, match="no organization"):
        call_command("create_api_key", "--org", "nope", stdout=io.StringIO(), stderr=io.StringIO())
    assert not ApiKey.objects.exists()


def test_the_admin_shows_a_new_key_once_and_stores_only_its_hash(organization, admin_client):
    response = admin_client.post("/admin/ops_app/apikey/add/", {"organization": organization.pk, "name": "grafana"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get(organization=organization)
    page = response.content.decode()
    raw_key = re.search(r'id="api-key"[^>]*value="([^"]+)"', page)[1]
    assert hashlib.sha256(raw_key.encode()).hexdigest() == key.key_hash
    assert key.created_by is not None
    # Never again: the key's own page shows the prefix only.
    again = admin_client.get(f"/admin/ops_app/apikey/{key.pk}/change/").content.decode()
    assert key.prefix in again and raw_key not in again


def test_the_admin_revoke_action_stops_a_key(organization, admin_client):
    key, raw_key = ApiKey.issue(organization=organization, name="dashboard")

    admin_client.post("/admin/ops_app/apikey/", {"action": "revoke", "_selected_action": [key.pk]}, follow=True)

    key.refresh_from_db()
    assert key.revoked_at is not None
    assert Api(raw_key).get("failures").status_code == 401


# --- Staff sessions -----------------------------------------------------------------------------


def test_a_superuser_session_sees_every_organization(source, admin_client):
    mine = make_event(source, status=EventStatus.FAILED)
    theirs = make_event(other_org_source(), status=EventStatus.FAILED)

    response = admin_client.get("/api/v1/failures", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    assert {f["id"] for f in response.json()["failures"]} == {str(mine.id), str(theirs.id)}


def test_a_superuser_can_browse_the_api_in_html(source, admin_client):
    event = make_event(source, status=EventStatus.FAILED)

    page = admin_client.get("/api/v1/failures", HTTP_ACCEPT="text/html")

    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    assert str(event.id).encode() in page.content


def test_a_staff_session_needs_the_admin_permissions_for_each_act(source):
    event = make_event(source, status=EventStatus.FAILED)
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    api = Api(None, client)

    assert api.get("failures").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_webhookevent"))
    assert api.get("failures").status_code == 200
    assert api.post(f"events/{event.id}/retry").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="retry_event"))
    user = User.objects.get(pk=user.pk)  # drop the cached permissions
    client.force_login(user)
    assert api.post(f"events/{event.id}/retry").status_code == 202


def test_a_session_without_staff_status_is_refused(db):
    client = Client()
    client.force_login(User.objects.create_user("someone", password="pw"))

    assert Api(None, client).get("failures").status_code == 403


# --- Throttling ---------------------------------------------------------------------------------


def test_throttling_counts_per_key_and_answers_429_with_retry_after(organization):
    first, second = api_for(organization), api_for(organization)
    rates = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"read": "2/min", "write": "1/min"}}

    with override_settings(REST_FRAMEWORK=rates):
        assert [first.get("failures").status_code for _ in range(2)] == [200, 200]
        throttled = first.get("failures")
        other_key = second.get("failures")

    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "throttled"
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert other_key.status_code == 200
