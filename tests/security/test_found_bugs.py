"""Requests the fuzzer and the URL enumeration found answering 500, kept as plain tests."""

from rest_framework.test import APIClient

PREVIEWS = "/api/v1/portfolios/rebalancings/previews/"


def test_an_error_echoing_a_nul_character_is_stored_and_replayed(api_client):
    # The 400 names the unknown preference as sent, U+0000 included; PostgreSQL's jsonb
    # cannot store that, so keeping the answer for the Idempotency-Key was a 500. The
    # answer is now kept as the JSON text sent (which escapes it): replayed exactly.
    body = {"accounts": [], "preferences": {"bad\x00name": "1"}}
    first = api_client.post(PREVIEWS, body, format="json", HTTP_IDEMPOTENCY_KEY="nul-in-the-answer")
    assert first.status_code == 400
    assert "preferences.bad\x00name" in {error["field"] for error in first.json()["errors"]}
    again = api_client.post(PREVIEWS, body, format="json", HTTP_IDEMPOTENCY_KEY="nul-in-the-answer")
    assert again.status_code == 400
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content


def test_options_on_the_global_preferences(api_client):
    # DRF's OPTIONS answer asks the view for its object; the view had no URL lookup.
    response = api_client.options("/api/v1/rebalancing/preferences/")
    assert response.status_code == 200
    assert response.json()["name"]


def test_options_on_the_docs_page_is_refused_not_a_crash(admin_client):
    # The HTML docs view could not render DRF's OPTIONS answer.
    assert admin_client.options("/api/v1/docs/").status_code == 405
    assert admin_client.get("/api/v1/docs/").status_code == 200


def test_head_needs_what_get_needs(db, user_with_perms):
    from tests.factories import AccountFactory

    account = AccountFactory()
    user = user_with_perms("portfolios.view_portfolioaccount", username="account-viewer")
    client = APIClient()
    client.force_authenticate(user)
    url = f"/api/v1/portfolios/accounts/{account.pk}/holdings/"
    assert client.get(url).status_code == 403
    assert client.head(url).status_code == 403  # was 200: the whole valuation ran


def test_a_quote_time_with_an_offset_beyond_15_hours_is_stored(api_client):
    # Python takes offsets up to ±23:59, PostgreSQL's timestamptz only to ±15:59: a rate
    # dated 1978-06-30T21:47:03-23:43 was a 500 there. The time is kept as its UTC instant.
    from datetime import UTC, datetime

    from portfolios.models import FxRate

    body = {"rates": [{"base": "CNY", "quote": "IDR", "rate": "3.77", "effective_at": "1978-06-30T21:47:03-23:43"}]}
    response = api_client.post("/api/v1/fx-rates/", body, format="json")
    assert response.status_code == 200, response.content
    rate = FxRate.objects.get(base="CNY", quote="IDR")
    assert (rate.effective_at.isoformat(), rate.quoted_at) == ("1978-07-01", datetime(1978, 7, 1, 21, 30, 3, tzinfo=UTC))
