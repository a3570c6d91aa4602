"""The admin in a real browser (Playwright driving the system Chromium): log in, the
dashboard and its charts (each screenshot checked non-blank), the drift filter, an
account and an allocation page. Writes the screenshots of docs/screenshots/.

Skipped when /usr/bin/chromium is missing, unless BALLAST_REQUIRE_BROWSER=1 (CI), which
turns the skip into an error. All tests carry xdist_group("browser"): with
`--dist loadgroup` they run in one worker."""

import os
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

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser"), pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread, so Django would refuse the
    # test's own ORM calls; allowed for these tests only (never in the process's
    # environment for longer: the deploy check of tests/security would see it).
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
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
    operator = UserFactory(username="operator", is_staff=True, is_superuser=True, password="correct horse battery")  # noqa: S106
    return {"allocation": allocation, "accounts": accounts, "operator": operator}


def png_pixels(png: bytes) -> list[bytes]:
    """The pixels of an 8-bit RGB or RGBA PNG (what Chromium writes), decoded without
    Pillow: IDAT inflated and each scanline's filter undone."""
    import zlib

    data, position, width, channels = b"", 8, 0, 3
    while position < len(png):
        length = int.from_bytes(png[position:position + 4], "big")
        kind, body = png[position + 4:position + 8], png[position + 8:position + 8 + length]
        if kind == b"IHDR":
            width, channels = int.from_bytes(body[:4], "big"), {2: 3, 6: 4}[body[9]]
        elif kind == b"IDAT":
            data += body
        position += 12 + length
    raw, stride, pixels, previous = zlib.decompress(data), width * channels, [], bytearray(width * channels)
    for start in range(0, len(raw), stride + 1):
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        pixels.extend(bytes(line[i:i + 3]) for i in range(0, stride, channels))
        previous = line
    return pixels


def non_blank(png: bytes) -> bool:
    """A screenshot with a picture in it: several colours, and at least 2 % of the pixels
    differ from the background (the commonest colour)."""
    from collections import Counter

    counts = Counter(png_pixels(png))
    background = counts.most_common(1)[0][1]
    total = sum(counts.values())
    return len(counts) >= 3 and (total - background) / total >= 0.02


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


def login(browser, live_server, username: str):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.goto(live_server.url + reverse("admin:login"))
    page.fill("#id_username", username)
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard")
    return page


def right_edge_on_screen(page, selector: str) -> None:
    """The column header is on screen at 1440 px, without scrolling sideways."""
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    assert box["x"] + box["width"] <= 1440, (selector, box)


def chunks_run(execution, count: int, pause: float = 0.6) -> None:
    """Run `count` of the execution's pending chunks as a worker would (the test suite's
    broker has no worker), a pause between them so the progress has a time axis."""
    import time

    from rebalancing.models import ChunkStatus, ExecutionChunk
    from rebalancing.services import execution_chunk_process

    pending = ExecutionChunk.objects.filter(execution=execution, status=ChunkStatus.PENDING).order_by("number")
    for chunk in list(pending)[:count]:
        time.sleep(pause)
        execution_chunk_process(chunk_id=chunk.pk)


def test_the_whole_flow_from_drift_to_an_approved_execution(browser, page, live_server, book, settings):
    """Log in → dashboard → drift filter → preview → rebalance now → progress bar to done →
    blotter CSV → four-eyes approval by a second user → audit history."""
    from django.contrib.auth.models import Permission

    from rebalancing.models import Execution, ExecutionStatus, TradeOrder, TradeOrderStatus
    from rebalancing.services import preferences_replace

    settings.REBALANCE_CHUNK_SIZE = 2
    operator = book["operator"]
    preferences_replace(values={"approval_order_count": 1}, user=operator)  # every execution needs four eyes
    approver = UserFactory(username="approver", is_staff=True, password="correct horse battery")  # noqa: S106
    # What the "Approvers" group holds (migration rebalancing 0011; a transactional test
    # starts from an emptied database, so the permissions are given one by one).
    approver.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="rebalancing",
        codename__in=["approve_execution", "view_execution", "view_tradeorder", "view_executionresult"],
    ))

    # Dashboard → the accounts outside their band.
    page.click("#card-drift .ballast-figure a")
    page.wait_for_selector("#result_list")
    outside = page.locator("#result_list tbody tr").count()
    assert outside > 0
    # Preview: nothing written.
    page.check("#action-toggle")
    page.select_option("select[name=action]", "preview_rebalance")
    page.click("button[name=index]")
    page.wait_for_selector("#preview-form")
    assert page.locator("tr.account").count() == outside
    assert TradeOrder.objects.count() == 0
    page.screenshot(path=str(SCREENSHOTS / "preview.png"), full_page=True)

    # Rebalance now: confirmation, then the execution's page.
    page.go_back()
    page.wait_for_selector("#result_list")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "rebalance_now")
    page.click("button[name=index]")
    page.wait_for_selector("#rebalance-now-form")
    page.click("#rebalance-now-form input[type=submit]")
    page.wait_for_selector("#execution-header")
    execution = Execution.objects.get()
    assert execution.requested_by == operator and execution.total == outside

    # A worker runs half the chunks: the page follows by itself (it polls).
    chunks = execution.chunks.count()
    assert chunks > 2
    chunks_run(execution, chunks // 2)
    done = Execution.objects.get(pk=execution.pk).done
    assert 0 < done < outside
    page.wait_for_function(
        f"document.getElementById('execution-progress').value == {done}", timeout=15_000,
    )
    page.wait_for_selector("#chart-execution-progress circle")
    assert page.locator("#execution-status").inner_text() == "RUNNING"
    page.screenshot(path=str(SCREENSHOTS / "execution-running.png"), full_page=True)
    assert non_blank(page.locator("#chart-execution-progress").screenshot())

    # The rest: the bar reaches the end and the page shows the execution waiting for approval.
    chunks_run(execution, chunks)
    page.wait_for_selector("#execution-status:has-text('AWAITING_APPROVAL')", timeout=20_000)
    bar = page.locator("#execution-progress")
    assert bar.get_attribute("value") == bar.get_attribute("max") == str(outside)
    assert page.locator("#execution-approve-link").count() == 0  # never one's own
    assert "another user must approve" in page.locator("#execution-approval").inner_text()

    # The blotter of the execution's orders, and its CSV.
    page.click("#execution-blotter-link")
    page.wait_for_selector("table")
    with page.expect_download() as download:
        page.click("a[href*='blotter/csv']")
    lines = Path(download.value.path()).read_text().strip().splitlines()
    pending = TradeOrder.objects.filter(execution=execution, status=TradeOrderStatus.PENDING_APPROVAL)
    assert len(lines) > 1 and pending.exists()
    instruments = {order.instrument.isin for order in pending.select_related("instrument")}
    assert all(any(isin in line for line in lines) for isin in instruments)

    # The approver: their queue on the dashboard, the execution, approve with a comment.
    second = login(browser, live_server, "approver")
    queue = second.locator("#card-approvals a[href*='/rebalancing/execution/']").first
    queue.click()
    second.wait_for_selector("#execution-approve-link")
    second.click("#execution-approve-link")
    second.fill("textarea[name=comment]", "Checked against the drift report")
    second.click("#execution-decision-form input[type=submit]")
    second.wait_for_selector("#execution-status:has-text('COMPLETED')")
    execution.refresh_from_db()
    assert execution.status == ExecutionStatus.COMPLETED and execution.approved_by == approver
    assert not TradeOrder.objects.filter(execution=execution, status=TradeOrderStatus.PENDING_APPROVAL).exists()
    second.screenshot(path=str(SCREENSHOTS / "execution-approved.png"), full_page=True)

    # The audit history names both people.
    second.click("a.historylink")
    second.wait_for_selector("#audit-entries")
    history = second.locator("#audit-entries").inner_text()
    assert "approver" in history and "operator" in history
    second.screenshot(path=str(SCREENSHOTS / "execution-history.png"), full_page=True)
    second.context.close()


def test_key_columns_are_on_screen_at_1440_px(page, live_server, book):
    """Execution progress, trade-order status, savings-run failure reason and audit changes."""
    from rebalancing.models import Execution, ExecutionStatus, Side

    execution = Execution.objects.create(status=ExecutionStatus.RUNNING, rebalance_date=timezone.localdate(), total=24,
                                         done=10, requested_by=book["operator"])
    account = book["accounts"][0]
    instrument = account.positions.first().instrument
    from rebalancing.models import TradeOrder

    TradeOrder.objects.create(
        account=account, instrument=instrument, side=Side.BUY, transaction_type="BUY", units=Decimal(3),
        unit_price=Decimal("84.12"), trade_amount=Decimal("252.36"), currency="EUR", execution_method="UNITS",
        execution=execution,
    )
    from rebalancing.models import ClaimOutcome, SavingsPlan, SavingsPlanRun
    from rebalancing.services import preferences_replace

    plan = SavingsPlan.objects.create(account=account, cash_amount=Decimal("250.00"), currency="EUR", day=1,
                                      start_date=timezone.localdate())
    SavingsPlanRun.objects.create(
        savings_plan=plan, due_date=timezone.localdate(), outcome=ClaimOutcome.FAILED,
        detail="account CL-0000 lacks the cash: 250.00 EUR needed, 112.40 EUR free after the buffers",
    )
    preferences_replace(values={"min_trade_amount": Decimal("25")}, user=book["operator"])  # an audit entry
    for url, column in (
        (reverse("admin:rebalancing_execution_changelist"), "th.column-progress"),
        (reverse("admin:rebalancing_tradeorder_changelist"), "th.column-status"),
        (reverse("admin:rebalancing_savingsplanrun_changelist"), "th.column-detail"),
        (reverse("admin:auditlog_logentry_changelist"), "th.column-changed_fields"),
    ):
        page.goto(live_server.url + url)
        page.wait_for_selector("#changelist")
        right_edge_on_screen(page, column)
        page.screenshot(path=f"/tmp/cockpit-columns-{column.split('-', 1)[1]}.png")
