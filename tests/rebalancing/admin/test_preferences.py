"""The rebalance preferences admin: the global default page and per-account overrides,
saved through preferences_replace (its refusals are form errors)."""

from decimal import Decimal

import pytest
from django.contrib.admin.widgets import AutocompleteSelect
from django.contrib.messages import get_messages
from django.urls import reverse

from rebalancing.models import RebalancePreferences
from rebalancing.services import account_preferences, preferences_replace
from tests.factories import AccountFactory
from tests.portfolios.admin.test_site import page_data

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:rebalancing_rebalancepreferences_changelist")
GLOBAL = reverse("admin:rebalancing_rebalancepreferences_global")
ADD = reverse("admin:rebalancing_rebalancepreferences_add")


def change_url(row) -> str:
    return reverse("admin:rebalancing_rebalancepreferences_change", args=[row.pk])


def test_the_global_page_is_created_on_the_first_visit(admin_client):
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert f'href="{GLOBAL}"' in response.content.decode()

    response = admin_client.get(GLOBAL)
    row = RebalancePreferences.objects.get(is_global=True)
    assert response.status_code == 302 and response["Location"] == change_url(row)
    assert admin_client.get(GLOBAL)["Location"] == change_url(row)
    assert RebalancePreferences.objects.count() == 1

    response = admin_client.get(change_url(row))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "account" not in form.fields
    assert "Empty: the built-in default, 100." in form.fields["cash_from_sells_pct"].help_text
    assert "Global default preferences" in response.content.decode()


def test_the_global_page_shows_no_null_box_no_unknown_and_no_add_another(admin_client):
    row = RebalancePreferences.objects.get(pk=admin_client.get(GLOBAL)["Location"].rstrip("/").split("/")[-2])
    content = admin_client.get(change_url(row)).content.decode()
    assert ">null</textarea>" not in content
    assert 'name="default_decimals"' in content
    assert "Unknown" not in content and "— inherited —" in content
    assert "_addanother" not in content
    assert 'name="_save"' in content


def test_saving_the_global_page_goes_through_the_service(admin_client, superuser):
    row = RebalancePreferences.objects.get(pk=admin_client.get(GLOBAL)["Location"].rstrip("/").split("/")[-2])
    data = page_data(admin_client.get(change_url(row))) | {
        "min_trade_amount": "25", "order_basis": "UNITS", "filter_by_min_max": "true",
        "default_decimals": '{"FUND": 2}',
    }
    response = admin_client.post(change_url(row), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    row.refresh_from_db()
    assert (row.min_trade_amount, row.order_basis, row.filter_by_min_max, row.default_decimals) == (
        Decimal("25"), "UNITS", True, {"FUND": 2}
    )
    assert row.updated_by == superuser
    # Emptying a field makes it inherit the built-in default again.
    response = admin_client.post(change_url(row), data | {"min_trade_amount": ""})
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.min_trade_amount is None and row.order_basis == "UNITS"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"cash_from_sells_pct": "150"}, "cash_from_sells_pct", "must be a percentage between 0 and 100"),
        ({"min_trade_amount": "-1"}, "min_trade_amount", "must not be negative"),
        ({"cash_range_min": "10", "cash_range_max": "5"}, "cash_range_max", "must not be below cash_range_min"),
        ({"default_decimals": '{"FUND": 11}'}, "default_decimals", "FUND: must be a whole number from 0 to 10"),
        ({"default_decimals": '{"SHARES": 1}'}, "default_decimals", "SHARES: is not an instrument type"),
    ],
)
def test_invalid_values_are_form_errors_and_change_nothing(admin_client, changes, field, message):
    row = preferences_replace(values={"min_trade_amount": Decimal("7")})
    before = list(RebalancePreferences.objects.values())
    response = admin_client.post(change_url(row), page_data(admin_client.get(change_url(row))) | changes)
    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors[field])
    assert list(RebalancePreferences.objects.values()) == before


def test_account_overrides_are_added_with_an_autocomplete(admin_client, superuser):
    preferences_replace(values={"min_trade_amount": Decimal("20")})
    account = AccountFactory(client_id="CL-PICKY")
    response = admin_client.get(ADD)
    form = response.context["adminform"].form
    assert isinstance(form.fields["account"].widget.widget, AutocompleteSelect)
    assert "Empty: the global default, 20." in form.fields["min_trade_amount"].help_text

    params = {"app_label": "rebalancing", "model_name": "rebalancepreferences", "field_name": "account", "term": "PICKY"}
    found = admin_client.get(reverse("admin:autocomplete"), params).json()["results"]
    assert [row["id"] for row in found] == [str(account.pk)]

    response = admin_client.post(ADD, page_data(response) | {"account": str(account.pk), "cash_from_sells_pct": "80"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    row = RebalancePreferences.objects.get(account=account)
    assert row.updated_by == superuser
    effective = account_preferences(account)
    assert effective.overridden == {"cash_from_sells_pct"}
    assert effective.values["cash_from_sells_pct"] == Decimal("80")
    assert effective.values["min_trade_amount"] == Decimal("20")

    # A second override row for the same account is refused; change the first instead.
    response = admin_client.post(ADD, page_data(admin_client.get(ADD)) | {"account": str(account.pk)})
    assert response.status_code == 200
    assert "already has preference overrides" in str(response.context["adminform"].form.errors["account"])

    # On the change page the account is fixed; clearing every field clears the overrides.
    response = admin_client.get(change_url(row))
    assert "account" not in response.context["adminform"].form.fields
    response = admin_client.post(change_url(row), page_data(response) | {"cash_from_sells_pct": ""})
    assert response.status_code == 302
    assert account_preferences(account).overridden == frozenset()


def test_an_invalid_override_is_refused_on_the_add_page(admin_client):
    account = AccountFactory()
    response = admin_client.post(ADD, page_data(admin_client.get(ADD)) | {"account": str(account.pk), "min_trade_amount": "-5"})
    assert response.status_code == 200
    assert "must not be negative" in str(response.context["adminform"].form.errors["min_trade_amount"])
    assert not RebalancePreferences.objects.exists()
    response = admin_client.post(ADD, page_data(admin_client.get(ADD)) | {"min_trade_amount": "5"})
    assert "account" in response.context["adminform"].form.errors


def test_the_changelist_names_scope_and_fields_set(admin_client):
    preferences_replace(values={"min_trade_amount": Decimal("5")})
    account = AccountFactory(client_id="CL-LISTED")
    preferences_replace(values={"cash_from_sells_pct": Decimal("80"), "order_basis": "UNITS"}, account=account)
    content = admin_client.get(CHANGELIST).content.decode()
    assert "Global default preferences" in content and "CL-LISTED" in content
    assert "order_basis, cash_from_sells_pct" in content
    assert admin_client.get(CHANGELIST, {"q": "LISTED"}).context["cl"].result_count == 1


def test_viewers_see_but_do_not_create_or_change(client, user_with_perms):
    client.force_login(user_with_perms("rebalancing.view_rebalancepreferences", username="viewer"))
    response = client.get(GLOBAL, follow=True)
    assert "the built-in defaults apply" in " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert not RebalancePreferences.objects.exists()

    row = preferences_replace(values={"min_trade_amount": Decimal("5")})
    assert client.get(GLOBAL)["Location"] == change_url(row)
    response = client.get(change_url(row))
    assert response.status_code == 200 and not response.context["has_change_permission"]
    assert client.post(change_url(row), {"min_trade_amount": "9"}).status_code == 403
    row.refresh_from_db()
    assert row.min_trade_amount == Decimal("5")


def test_approval_thresholds_are_saved_from_the_global_page_and_refused_when_invalid(admin_client):
    from rebalancing.services.preferences import approval_thresholds

    row = RebalancePreferences.objects.get(pk=admin_client.get(GLOBAL)["Location"].rstrip("/").split("/")[-2])
    data = page_data(admin_client.get(change_url(row)))
    response = admin_client.post(change_url(row), data | {
        "approval_gross_amount": "250000", "approval_order_count": "5000", "approval_currency": "CHF",
    })
    assert response.status_code == 302, response.context["adminform"].form.errors
    thresholds = approval_thresholds()
    assert (thresholds.gross_amount, thresholds.order_count, thresholds.currency) == (Decimal("250000"), 5000, "CHF")

    before = list(RebalancePreferences.objects.values())
    response = admin_client.post(change_url(row), data | {"approval_gross_amount": "1", "approval_currency": "XYZ"})
    assert response.status_code == 200
    assert "XYZ is not an ISO 4217 currency code" in " ".join(response.context["adminform"].form.errors["approval_currency"])
    assert list(RebalancePreferences.objects.values()) == before


def test_without_the_approve_permission_the_thresholds_are_shown_but_not_changed(client, user_with_perms):
    from rebalancing.services.preferences import approval_thresholds

    row = preferences_replace(values={"approval_order_count": 10})
    client.force_login(user_with_perms(
        "rebalancing.change_rebalancepreferences", "rebalancing.view_rebalancepreferences", username="operator"
    ))
    page = client.get(change_url(row))
    form = page.context["adminform"].form
    assert form.fields["approval_order_count"].disabled and "needs the permission" in form.fields[
        "approval_order_count"
    ].help_text
    data = page_data(page) | {"approval_order_count": "", "min_trade_amount": "3"}  # a tampered post is ignored
    response = client.post(change_url(row), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    row.refresh_from_db()
    assert approval_thresholds().order_count == 10 and row.min_trade_amount == Decimal("3")
