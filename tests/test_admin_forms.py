"""Admin add forms: the organization is preselected when there is only one to choose."""

import pytest

from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

ADD_FORMS = [
    "/admin/webhooks_app/assigneerule/add/",
    "/admin/webhooks_app/tasktemplate/add/",
    "/admin/ops_app/apikey/add/",
]


def selected_organization(page: str) -> str | None:
    select = page.split('name="organization"')[1].split("</select>")[0]
    if "selected" not in select:
        return None
    value = select.split("selected")[0].rsplit('value="', 1)[1].split('"')[0]
    return value or None  # Django selects the empty "---------" choice when none is given


@pytest.mark.parametrize("url", ADD_FORMS)
def test_it_preselects_the_only_organization(admin_client, url):
    only = OrganizationFactory()

    page = admin_client.get(url).content.decode()

    assert selected_organization(page) == str(only.pk)


@pytest.mark.parametrize("url", ADD_FORMS)
def test_it_leaves_the_choice_open_when_there_are_several(admin_client, url):
    OrganizationFactory()
    OrganizationFactory()

    page = admin_client.get(url).content.decode()

    assert selected_organization(page) is None
