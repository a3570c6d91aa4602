"""The admin in a real browser (Playwright driving the system Chromium): log in, the
dashboard and its charts (each screenshot checked non-blank), the drift filter, an
account and an allocation page. Writes the screenshots of docs/screenshots/.

Skipped when /usr/bin/chromium is missing, unless BALLAST_REQUIRE_BROWSER=1 (CI), which
turns the skip into an error. All tests carry xdist_group("browser"): with
`--dist loadgroup` they run in one worker."""

import os
import statistics
from decimal import Decimal
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from portfolios.models import Configuration
from rebalancing.services.drift import account_drifts_refresh
from tests.factories import (
    AccountFactory, CashAccountFactory, InstrumentFactory, PositionFactory, PriceFactory, UserFactory, make_allocation,
)

CHROMIUM = os.environ.get("BALLAST_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("BALLAST_REQUIRE_BROWSER") == "1"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

if not Path(CHROMIUM).exists():
    if REQUIRED:
        raise RuntimeError(f"BALLAST_REQUIRE_BROWSER=1 but there is no browser at {CHROMIUM}: install chromium")
    pytest.skip(f"no Chromium at {CHROMIUM}: browser tests skipped", allow_module_level=True)

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # live_server + Playwright's event loop
pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser"), pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, book):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.goto(live_server.url + reverse("admin:login"))
    page.fill("#id_username", "operator")
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard")
    yield page
    context.close()


@pytest.fixture
def book(db):
    today = timezone.localdate()
    etfs = [InstrumentFactory(name=name) for name in ("World Equity ETF", "Euro Govt Bond ETF", "Gold ETC")]
    for etf, price in zip(etfs, ("84.12", "101.35", "23.80")):
        PriceFactory(instrument=etf, effective_at=today, value=Decimal(price))
    allocation = make_allocation(dict(zip(etfs, (Decimal("0.6"), Decimal("0.3"), Decimal("0.1")))), name="Balanced")
    make_allocation({etfs[0]: Decimal("0.9"), etfs[1]: Decimal("0.1")}, name="Growth")
    accounts = []
    for n in range(24):
        account = AccountFactory(client_id=f"CL-{n:04d}")
        Configuration.objects.create(account=account, allocation=allocation)
        drift = Decimal(n % 6) * 5
        PositionFactory(account=account, instrument=etfs[0], units=Decimal(700 + drift * 10))
        PositionFactory(account=account, instrument=etfs[1], units=Decimal(300))
        PositionFactory(account=account, instrument=etfs[2], units=Decimal(400 - drift * 8))
        CashAccountFactory(account=account, balance=Decimal("2500.00"), is_default=True)
        accounts.append(account)
    account_drifts_refresh()
    UserFactory(username="operator", is_staff=True, is_superuser=True, password="correct horse battery")  # noqa: S106
    return {"allocation": allocation, "accounts": accounts}


def non_blank(png: bytes) -> bool:
    """A screenshot with more than one colour in it: the pixel values vary."""
    import zlib

    # Decode the PNG's IDAT without Pillow: enough to measure the spread of byte values.
    data, position = b"", 8
    while position < len(png):
        length = int.from_bytes(png[position:position + 4], "big")
        kind = png[position + 4:position + 8]
        if kind == b"IDAT":
            data += png[position + 8:position + 8 + length]
        position += 12 + length
    raw = zlib.decompress(data)
    sample = raw[:: max(1, len(raw) // 20000)]
    return statistics.pvariance(sample) > 100


def test_dashboard_charts_and_drift_filter(page, live_server, book):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
    for chart in ("chart-accounts", "chart-aum", "chart-drift", "chart-outside-band", "chart-executions"):
        assert non_blank(page.locator(f"#{chart}").screenshot()), chart
    assert page.locator("nav#nav-sidebar, #content-main").first.is_visible()
    # The drift picture links to the accounts outside their band, largest drift first.
    page.click("#card-drift .ballast-figure a")
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() > 0
    assert "outside band" in rows.first.inner_text()
    # Every key column is on screen at 1440 px.
    drift_header = page.locator("#result_list th.column-drift_shown")
    box = drift_header.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 1440


def test_account_and_allocation_pages(page, live_server, book):
    account = book["accounts"][5]
    page.goto(live_server.url + reverse("admin:portfolios_portfolioaccount_change", args=[account.pk]))
    chart = page.locator("#chart-account-weights")
    chart.scroll_into_view_if_needed()
    assert non_blank(chart.screenshot())
    page.screenshot(path=str(SCREENSHOTS / "account.png"), full_page=True)
    page.goto(live_server.url + reverse("admin:portfolios_allocation_change", args=[book["allocation"].pk]))
    chart = page.locator("#chart-allocation-weights")
    assert non_blank(chart.screenshot())
    page.screenshot(path=str(SCREENSHOTS / "allocation.png"), full_page=True)
