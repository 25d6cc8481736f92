"""Circuit breakers in the ops room: the REST API (staff see all, an API key its own
organization's connections and the shared providers), the admin list with live state, and the
audited reset act."""

import pytest
from django.urls import reverse

from ops_app.models import AuditEntry, Breaker
from tests.factories import OrganizationFactory, SourceFactory
from tests.support.api import api_for
from tests.support.breakers import QUICK_OVERRIDES, quick_slug
from tests.support.fake_http import Fault
from webhooks_app.breakers import CLOSED, OPEN, breaker_call, breaker_state
from webhooks_app.connectors import connector_for
from webhooks_app.connectors.base import TaskSpec
from webhooks_app.errors import ProcessingError
from webhooks_app.models import ConnectorKind, Source

pytestmark = pytest.mark.usefixtures("fresh_api_cache")


@pytest.fixture(autouse=True)
def quick(settings):
    settings.MENDHOOK_BREAKER_OVERRIDES = QUICK_OVERRIDES


def opened(source: Source, fake_clio) -> str:
    fake_clio.reset()
    fake_clio.fail_next(Fault(500), Fault(500))
    spec = TaskSpec(1, "m", "t", "", "a", None, f"{source.slug}:1")
    for _ in range(2):
        with pytest.raises(ProcessingError):
            connector_for(source).create_task(spec)
    assert breaker_state(source.connector_breaker_name).state == OPEN
    return source.connector_breaker_name


def clio(organization) -> Source:
    return SourceFactory(
        organization=organization, slug=quick_slug(), connector=ConnectorKind.CLIO_HTTP, connector_base_url="http://x"
    )


def shared_provider_used() -> str:
    name = f"retell-{quick_slug()}"  # no ":" in it: a provider every organization shares
    breaker_call(name, lambda: "ok")
    return name


def test_an_api_key_sees_its_own_connections_and_shared_providers_not_another_orgs(db, organization, fake_clio):
    mine = clio(organization)
    mine.connector_base_url = fake_clio.url
    mine.save()
    theirs = clio(OrganizationFactory())
    theirs.connector_base_url = fake_clio.url
    theirs.save()
    mine_name, theirs_name = opened(mine, fake_clio), opened(theirs, fake_clio)
    shared = shared_provider_used()

    body = api_for(organization).get("breakers").json()

    by_name = {b["name"]: b for b in body["breakers"]}
    assert mine_name in by_name and shared in by_name
    assert theirs_name not in by_name
    assert by_name[mine_name]["state"] == OPEN and by_name[mine_name]["failures"] == 2
    assert by_name[mine_name]["openedAt"] is not None and 0 < by_name[mine_name]["secondsUntilProbe"] <= 3
    assert by_name[shared]["state"] == CLOSED and by_name[shared]["openedAt"] is None


def test_staff_see_every_breaker(db, organization, fake_clio, ops):
    other = clio(OrganizationFactory())
    other.connector_base_url = fake_clio.url
    other.save()
    name = opened(other, fake_clio)

    body = ops.get("/api/v1/breakers").json()

    assert name in [b["name"] for b in body["breakers"]]


def test_without_a_key_the_breakers_are_not_shown(db, client):
    assert client.get("/api/v1/breakers").status_code in (401, 403)


def test_ops_staff_reset_an_open_breaker_from_the_admin_with_a_note_and_it_is_audited(db, organization, fake_clio, ops):
    source = clio(organization)
    source.connector_base_url = fake_clio.url
    source.save()
    name = opened(source, fake_clio)

    listing = ops.get(reverse("admin:ops_app_breaker_changelist"))
    assert listing.status_code == 200 and name in listing.content.decode() and "open" in listing.content.decode()
    row = Breaker.objects.get(name=name)
    url = reverse("admin:ops_app_breaker_act", args=[row.pk, "reset_breaker"])

    without_note = ops.post(url, {"confirm": "yes", "note": ""})
    assert without_note.status_code == 200 and breaker_state(name).state == OPEN

    done = ops.post(url, {"confirm": "yes", "note": "Clio status page says resolved"})

    assert done.status_code == 302
    assert breaker_state(name).state == CLOSED
    entry = AuditEntry.objects.for_target(row).get()
    assert (entry.act, entry.status_before, entry.status_after) == ("reset_breaker", OPEN, CLOSED)
    assert entry.note == "Clio status page says resolved" and entry.actor_label == "ops.anna"


def test_a_closed_breaker_is_not_reset_again(db, organization, ops):
    name = shared_provider_used()
    ops.get(reverse("admin:ops_app_breaker_changelist"))
    row = Breaker.objects.get(name=name)

    page = ops.get(reverse("admin:ops_app_breaker_act", args=[row.pk, "reset_breaker"]))

    assert "already closed" in page.content.decode()


def test_staff_without_the_permission_cannot_reset(db, organization, fake_clio, viewer):
    source = clio(organization)
    source.connector_base_url = fake_clio.url
    source.save()
    name = opened(source, fake_clio)
    row = Breaker.objects.create(name=name)

    refused = viewer.post(
        reverse("admin:ops_app_breaker_act", args=[row.pk, "reset_breaker"]), {"confirm": "yes", "note": "x"}
    )

    assert refused.status_code == 403
    assert breaker_state(name).state == OPEN
