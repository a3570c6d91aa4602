"""The account page's inputs in numbers people read, and the restriction lists field
when there is no ACCOUNT list yet."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from portfolios.models import Position, RestrictionList
from tests.factories import AccountFactory, CashAccountFactory, InstrumentFactory, PositionFactory

pytestmark = pytest.mark.django_db


def input_value(content: str, name: str) -> str:
    found = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*>', content)
    assert found, name
    return re.search(r'value="([^"]*)"', found.group(0)).group(1)


@pytest.fixture
def account():
    account = AccountFactory(client_id="UNITS-1")
    PositionFactory(account=account, instrument=InstrumentFactory(name="Whole ETF", block_size=Decimal("1")),
                    units=Decimal("300"))
    PositionFactory(account=account, instrument=InstrumentFactory(name="Cent ETF", block_size=Decimal("0.01")),
                    units=Decimal("12.5"))
    PositionFactory(account=account, instrument=InstrumentFactory(name="Odd lot ETF", block_size=Decimal("1")),
                    units=Decimal("2.5"))
    CashAccountFactory(account=account, currency="EUR", balance=Decimal("1000"), is_default=True)
    return account


def test_position_units_show_the_instruments_precision_not_ten_decimals(admin_client, account):
    content = admin_client.get(reverse("admin:portfolios_portfolioaccount_change", args=[account.pk])).content.decode()
    shown = {}
    for index, position in enumerate(Position.objects.filter(account=account).order_by("pk")):
        shown[position.instrument.name] = input_value(content, f"positions-{index}-units")
    assert sorted(shown.values()) == ["12.50", "2.5", "300"]  # a finer fraction is never hidden
    assert "300.0000000000" not in content
    assert input_value(content, "cash_accounts-0-balance") == "1000.00"


def test_an_untouched_holdings_row_does_not_count_as_changed(admin_client, account):
    """The trimmed input is the same Decimal: the rows posted back as shown are unchanged,
    so saving the page does not replace the holdings."""
    response = admin_client.get(reverse("admin:portfolios_portfolioaccount_change", args=[account.pk]))
    checked = 0
    for inline in response.context["inline_admin_formsets"]:
        for form in inline.formset.initial_forms:
            data = {f"{form.prefix}-{name}": getattr(value, "pk", value)
                    for name, value in form.initial.items() if value is not None}
            posted = type(form)(data=data, prefix=form.prefix, instance=form.instance)
            assert not posted.has_changed(), (form.prefix, posted.changed_data)
            checked += 1
    assert checked == 4  # three positions and the cash account


def test_without_account_lists_the_field_says_so_and_links_to_add_one(admin_client, account):
    url = reverse("admin:portfolios_portfolioaccount_change", args=[account.pk])
    content = admin_client.get(url).content.decode()
    assert "No account lists yet" in content
    assert f'href="{reverse("admin:portfolios_restrictionlist_add")}?scope=ACCOUNT"' in content
    RestrictionList.objects.create(name="ESG exclusions", scope="ACCOUNT")
    content = admin_client.get(url).content.decode()
    assert "No account lists yet" not in content and "ESG exclusions" in content
    # The shared form field kept its own help text.
    assert "ACCOUNT restriction lists this account follows" in content
