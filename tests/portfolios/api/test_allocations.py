from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from portfolios.models import Allocation, AllocationLine, AllocationVersion, FuturesCost, InstrumentType
from tests.factories import (
    CashInstrumentFactory,
    InstrumentFactory,
    UserFactory,
    make_allocation,
    make_configuration,
)

from .conftest import error_fields, message_for, problem

URL = "/api/v1/portfolios/allocations/"


def detail_url(allocation_id) -> str:
    return f"{URL}{allocation_id}/"


def line(instrument, weight, by="ISIN", **extra) -> dict:
    reference = instrument.isin if by == "ISIN" else str(instrument.id)
    return {"instrument_id": reference, "instrument_id_type": by, "weight": str(weight), **extra}


def counts() -> tuple[int, int, int]:
    return Allocation.objects.count(), AllocationVersion.objects.count(), AllocationLine.objects.count()


@pytest.fixture
def etfs(db):
    return [InstrumentFactory() for _ in range(3)]


# --- Create and read ------------------------------------------------------------------

def test_create_returns_201_with_the_exact_representation(api_client, etfs):
    a, b = etfs[:2]
    response = api_client.post(
        URL,
        {"name": "Balanced", "base_currency": "EUR",
         "allocation": [line(a, "0.6"), line(b, "0.4", by="UUID", min_weight="0.3", max_weight="0.5")],
         "effective_from": "2026-01-05"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {
        "allocation_id", "name", "base_currency", "weight_type", "period_type", "period_count",
        "effective_from", "version", "allocation", "created_at", "updated_at", "needs_attention",
    }
    assert body["name"] == "Balanced"
    assert body["base_currency"] == "EUR"
    assert body["weight_type"] == "STATIC"
    assert body["period_type"] is None and body["period_count"] is None
    assert body["effective_from"] == "2026-01-05"
    assert body["version"] == 1
    assert body["allocation"] == [
        {"instrument_id": a.isin, "instrument_id_type": "ISIN", "isin": a.isin,
         "weight": "0.6", "min_weight": None, "max_weight": None},
        {"instrument_id": str(b.id), "instrument_id_type": "UUID", "isin": b.isin,
         "weight": "0.4", "min_weight": "0.3", "max_weight": "0.5"},
    ]
    allocation = Allocation.objects.get(pk=body["allocation_id"])
    assert allocation.current_version.lines.count() == 2
    assert allocation.owner.username == "admin"


def test_create_defaults(api_client, etfs):
    response = api_client.post(URL, {"allocation": [line(etfs[0], 1)]}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == ""
    assert body["base_currency"] == "EUR"
    assert body["weight_type"] == "STATIC"
    assert body["effective_from"] == timezone.localdate().isoformat()


def test_periodical_allocation(api_client, etfs):
    response = api_client.post(
        URL,
        {"allocation": [line(etfs[0], 1)], "weight_type": "PERIODICAL", "period_type": "WEEKLY", "period_count": 3},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["weight_type"], body["period_type"], body["period_count"]) == ("PERIODICAL", "WEEKLY", 3)


def test_get_one(api_client):
    allocation = make_allocation(name="Growth")
    response = api_client.get(detail_url(allocation.pk))
    assert response.status_code == 200
    assert response.json()["allocation_id"] == str(allocation.pk)
    assert response.json()["name"] == "Growth"
    assert len(response.json()["allocation"]) == 2


def test_get_unknown_is_a_404_problem(api_client, db):
    body = problem(api_client.get(detail_url("0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11")), 404)
    assert "0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11" in body["detail"]
    problem(api_client.get(detail_url("not-a-uuid")), 404)


def test_normalize_scales_weights_to_sum_to_one(api_client, etfs):
    a, b, c = etfs
    response = api_client.post(
        URL, {"allocation": [line(a, 50), line(b, 30), line(c, 20)], "normalize": True}, format="json"
    )
    assert response.status_code == 201, response.json()
    weights = [Decimal(row["weight"]) for row in response.json()["allocation"]]
    assert weights == [Decimal("0.5"), Decimal("0.3"), Decimal("0.2")]
    stored = AllocationLine.objects.filter(allocation_id=response.json()["allocation_id"])
    assert sum(row.weight for row in stored) == 1


def test_normalize_of_thirds_still_sums_exactly_to_one(api_client, etfs):
    response = api_client.post(URL, {"allocation": [line(i, 1) for i in etfs], "normalize": True}, format="json")
    assert response.status_code == 201, response.json()
    assert sum(Decimal(row["weight"]) for row in response.json()["allocation"]) == 1


def test_future_lines_are_outside_the_sum(api_client, etfs):
    future = InstrumentFactory(type=InstrumentType.FUTURE, futures_cost=FuturesCost.LATER)
    response = api_client.post(
        URL, {"allocation": [line(etfs[0], "0.7"), line(etfs[1], "0.3"), line(future, "0.5")]}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert [row["weight"] for row in response.json()["allocation"]] == ["0.7", "0.3", "0.5"]


def test_a_cash_line_counts_in_the_sum(api_client, etfs):
    cash = CashInstrumentFactory(currency="EUR")
    response = api_client.post(
        URL, {"allocation": [line(etfs[0], "0.95"), line(cash, "0.05", by="UUID")]}, format="json"
    )
    assert response.status_code == 201, response.json()


# --- Every rule of spec §2: 400 naming the field, nothing changes -------------------------

def _refused(api_client, payload: dict, field: str, words: str) -> dict:
    before = counts()
    body = problem(api_client.post(URL, payload, format="json"), 400)
    assert field in error_fields(body), body
    assert words in message_for(body, field), body
    assert counts() == before
    return body


def test_rule_at_least_one_line(api_client, db):
    _refused(api_client, {"allocation": []}, "allocation", "at least one line")


def test_rule_lines_are_required(api_client, db):
    _refused(api_client, {"name": "x"}, "allocation", "required")


def test_rule_weight_positive(api_client, etfs):
    _refused(api_client, {"allocation": [line(etfs[0], 1), line(etfs[1], 0)]}, "allocation[1].weight", "greater than 0")
    _refused(api_client, {"allocation": [line(etfs[0], "1.2"), line(etfs[1], "-0.2")]},
             "allocation[1].weight", "greater than 0")


def test_rule_no_instrument_twice(api_client, etfs):
    a = etfs[0]
    _refused(api_client, {"allocation": [line(a, "0.5"), line(a, "0.5", by="UUID")]},
             "allocation[1].instrument_id", "already in allocation[0]")


def test_rule_tradable_only(api_client, etfs):
    untradable = InstrumentFactory(tradable=False)
    _refused(api_client, {"allocation": [line(etfs[0], "0.5"), line(untradable, "0.5")]},
             "allocation[1].instrument_id", "not tradable")


def test_rule_unknown_instrument(api_client, etfs):
    _refused(api_client, {"allocation": [line(etfs[0], "0.5"), {"instrument_id": "US0378331005", "weight": "0.5"}]},
             "allocation[1].instrument_id", "US0378331005")


def test_rule_instrument_id_type_must_match(api_client, etfs):
    _refused(api_client,
             {"allocation": [{"instrument_id": etfs[0].isin, "instrument_id_type": "UUID", "weight": "1"}]},
             "allocation[0].instrument_id", "not a UUID")


def test_rule_weights_sum_to_exactly_one(api_client, etfs):
    _refused(api_client, {"allocation": [line(etfs[0], "0.6"), line(etfs[1], "0.39")]}, "allocation", "sum to exactly 1")
    _refused(api_client, {"allocation": [line(etfs[0], "0.6"), line(etfs[1], "0.41")]}, "allocation", "sum to exactly 1")


def test_rule_min_weight_between_0_and_weight(api_client, etfs):
    _refused(api_client, {"allocation": [line(etfs[0], "0.6", min_weight="0.7"), line(etfs[1], "0.4")]},
             "allocation[0].min_weight", "min_weight ≤ weight")


def test_rule_max_weight_between_weight_and_1(api_client, etfs):
    _refused(api_client, {"allocation": [line(etfs[0], "0.6"), line(etfs[1], "0.4", max_weight="0.3")]},
             "allocation[1].max_weight", "weight ≤ max_weight")
    _refused(api_client, {"allocation": [line(etfs[0], "0.6", max_weight="1.5"), line(etfs[1], "0.4")]},
             "allocation[0].max_weight", "max_weight ≤ 1")


def test_rule_min_weight_not_negative(api_client, etfs):
    _refused(api_client, {"allocation": [line(etfs[0], "0.6", min_weight="-0.1"), line(etfs[1], "0.4")]},
             "allocation[0].min_weight", "0 ≤ min_weight")


def test_rule_periodical_needs_a_period(api_client, etfs):
    body = _refused(api_client, {"allocation": [line(etfs[0], 1)], "weight_type": "PERIODICAL"},
                    "period_type", "required when weight_type is PERIODICAL")
    assert "period_count" in error_fields(body)


def test_rule_only_periodical_has_a_period(api_client, etfs):
    _refused(api_client, {"allocation": [line(etfs[0], 1)], "period_type": "MONTHLY", "period_count": 1},
             "period_type", "only a PERIODICAL")


def test_every_bad_line_is_named_at_once(api_client, etfs):
    body = _refused(
        api_client,
        {"allocation": [line(etfs[0], 0), line(etfs[1], "-1"), line(InstrumentFactory(tradable=False), "1")]},
        "allocation[0].weight", "greater than 0",
    )
    assert {"allocation[1].weight", "allocation[2].instrument_id"} <= error_fields(body)


def test_shape_errors_name_the_line_field(api_client, etfs):
    body = _refused(
        api_client,
        {"allocation": [line(etfs[0], "0.6"), {"instrument_id": etfs[1].isin, "weight": "abc"}, {"instrument_id": etfs[2].isin}]},
        "allocation[1].weight", "must be a decimal",
    )
    assert "allocation[2].weight" in error_fields(body)
    assert "allocation[0].weight" not in error_fields(body)


def test_shape_errors_for_bad_enums_and_dates(api_client, etfs):
    body = _refused(
        api_client,
        {"allocation": [line(etfs[0], 1, instrument_id_type="CUSIP")], "weight_type": "DYNAMIC",
         "effective_from": "2026-01-05T00:00:00Z"},
        "allocation[0].instrument_id_type", "not a valid choice",
    )
    assert {"weight_type", "effective_from"} <= error_fields(body)


def test_too_many_decimal_places_is_refused(api_client, etfs):
    _refused(api_client, {"allocation": [line(etfs[0], "0.5000000000001"), line(etfs[1], "0.4999999999999")]},
             "allocation[0].weight", "decimal places")


def test_a_non_list_allocation_is_named(api_client, db):
    _refused(api_client, {"allocation": {"instrument_id": "x"}}, "allocation", "list")


# --- Update, versions, delete ----------------------------------------------------------

def test_put_creates_a_new_version_and_keeps_the_old_one(api_client, etfs):
    a, b, c = etfs
    allocation = make_allocation({a: "0.6", b: "0.4"}, name="Balanced")
    response = api_client.put(
        detail_url(allocation.pk),
        {"name": "Balanced v2", "allocation": [line(a, "0.5"), line(c, "0.5", by="UUID")]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["version"] == 2
    assert body["name"] == "Balanced v2"
    assert [row["instrument_id"] for row in body["allocation"]] == [a.isin, str(c.id)]
    assert AllocationVersion.objects.filter(allocation=allocation).count() == 2
    first = AllocationVersion.objects.get(allocation=allocation, version=1)
    assert {(line.instrument_id, line.weight) for line in first.lines.all()} == {(a.id, Decimal("0.6")), (b.id, Decimal("0.4"))}


def test_put_is_the_complete_state_not_a_delta(api_client, etfs):
    allocation = make_allocation({etfs[0]: "1"}, name="Named", weight_type="PERIODICAL", period_type="MONTHLY",
                                 period_count=1)
    response = api_client.put(detail_url(allocation.pk), {"allocation": [line(etfs[1], "1")]}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["name"], body["weight_type"], body["period_type"]) == ("", "STATIC", None)


def test_put_refused_changes_nothing(api_client, etfs):
    allocation = make_allocation({etfs[0]: "1"})
    before = counts()
    body = problem(api_client.put(detail_url(allocation.pk), {"allocation": [line(etfs[1], "0.9")]}, format="json"), 400)
    assert "allocation" in error_fields(body)
    assert counts() == before
    allocation.refresh_from_db()
    assert allocation.current_version.version == 1


def test_put_unknown_is_404(api_client, etfs):
    problem(api_client.put(detail_url("0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11"),
                           {"allocation": [line(etfs[0], 1)]}, format="json"), 404)


def test_versions_newest_first(api_client, etfs):
    user = UserFactory(username="pm")
    allocation = make_allocation({etfs[0]: "1"}, user=user)
    api_client.put(detail_url(allocation.pk), {"allocation": [line(etfs[1], "1")], "name": "v2"}, format="json")
    response = api_client.get(f"{detail_url(allocation.pk)}versions/")
    assert response.status_code == 200
    body = response.json()
    assert body["meta"]["total_count"] == 2
    newest, oldest = body["data"]
    assert (newest["version"], oldest["version"]) == (2, 1)
    assert newest["created_by"] == "admin" and oldest["created_by"] == "pm"
    assert newest["allocation"][0]["instrument_id"] == etfs[1].isin
    assert oldest["allocation"][0]["instrument_id"] == str(etfs[0].id)
    assert "removed" in newest["change_summary"] and "added" in newest["change_summary"]
    assert {"effective_from", "weight_type", "period_type", "period_count", "created_at"} <= set(newest)


def test_versions_of_unknown_allocation_is_404(api_client, db):
    problem(api_client.get(f"{URL}0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11/versions/"), 404)
    problem(api_client.get(f"{URL}nope/versions/"), 404)


def test_delete(api_client):
    allocation = make_allocation()
    response = api_client.delete(detail_url(allocation.pk))
    assert response.status_code == 204
    assert not Allocation.objects.filter(pk=allocation.pk).exists()
    assert not AllocationVersion.objects.filter(allocation_id=allocation.pk).exists()


def test_delete_refused_while_configured(api_client):
    configuration = make_configuration()
    body = problem(api_client.delete(detail_url(configuration.allocation_id)), 409)
    assert "configuration" in body["detail"]
    assert Allocation.objects.filter(pk=configuration.allocation_id).exists()


def test_delete_unknown_is_404(api_client, db):
    problem(api_client.delete(detail_url("0b5f2b8e-8f5e-4c39-9d0e-3f4f0c2d9a11")), 404)


# --- List and filters ---------------------------------------------------------------

def test_list_is_paginated_newest_first(api_client, etfs):
    first = make_allocation({etfs[0]: "1"})
    second = make_allocation({etfs[1]: "1"})
    body = api_client.get(URL).json()
    assert body["meta"] == {"offset": 0, "limit": 100, "count": 2, "total_count": 2}
    assert [row["allocation_id"] for row in body["data"]] == [str(second.pk), str(first.pk)]


def test_filter_by_instrument_ids_isin_and_uuid_mixed(api_client, etfs):
    a, b, c = etfs
    with_a = make_allocation({a: "1"})
    with_b = make_allocation({b: "0.5", c: "0.5"})
    make_allocation({c: "1"})
    response = api_client.get(URL, {"instrument_ids": f"{a.isin},{b.id}"})
    assert response.status_code == 200
    assert {row["allocation_id"] for row in response.json()["data"]} == {str(with_a.pk), str(with_b.pk)}
    assert response.json()["meta"]["total_count"] == 2


def test_filter_by_instrument_ids_looks_at_the_current_version_only(api_client, etfs):
    a, b, _ = etfs
    allocation = make_allocation({a: "1"})
    api_client.put(detail_url(allocation.pk), {"allocation": [line(b, "1")]}, format="json")
    assert api_client.get(URL, {"instrument_ids": a.isin}).json()["data"] == []
    assert len(api_client.get(URL, {"instrument_ids": str(b.id)}).json()["data"]) == 1


def test_filter_by_unknown_instrument_is_a_400_naming_it(api_client, etfs):
    body = problem(api_client.get(URL, {"instrument_ids": f"{etfs[0].isin},US0378331005"}), 400)
    assert error_fields(body) == {"instrument_ids"}
    assert "US0378331005" in message_for(body, "instrument_ids")


def test_filter_by_created_dates_inclusive(api_client, etfs):
    old = make_allocation({etfs[0]: "1"})
    Allocation.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    new = make_allocation({etfs[1]: "1"})
    today = timezone.localdate()
    ids = lambda params: {row["allocation_id"] for row in api_client.get(URL, params).json()["data"]}  # noqa: E731
    assert ids({"start_date": today.isoformat()}) == {str(new.pk)}
    assert ids({"end_date": (today - timedelta(days=10)).isoformat()}) == {str(old.pk)}
    assert ids({"start_date": (today - timedelta(days=10)).isoformat(), "end_date": today.isoformat()}) == {
        str(old.pk), str(new.pk)
    }


def test_filter_by_bad_date_is_400(api_client, db):
    body = problem(api_client.get(URL, {"start_date": "2026-01-05T10:00:00"}), 400)
    assert error_fields(body) == {"start_date"}


@pytest.mark.parametrize("rows", [10, 100])
def test_list_query_count_does_not_grow_with_the_page(api_client, django_assert_num_queries, rows):
    instruments = [InstrumentFactory() for _ in range(4)]
    for _ in range(rows):
        make_allocation({i: "0.25" for i in instruments})
    # token lookup, COUNT, allocations with their current version, lines with instruments, alerts
    with django_assert_num_queries(5):
        response = api_client.get(URL, {"limit": rows})
    assert response.status_code == 200
    assert response.json()["meta"]["count"] == rows
    assert all(len(row["allocation"]) == 4 for row in response.json()["data"])


def test_versions_query_count_does_not_grow(api_client, django_assert_num_queries, etfs):
    allocation = make_allocation({etfs[0]: "1"})
    for index in range(5):
        api_client.put(detail_url(allocation.pk), {"allocation": [line(etfs[index % 3], "1")]}, format="json")
    # token, allocation exists, COUNT, versions with created_by, lines with instruments
    with django_assert_num_queries(5):
        response = api_client.get(f"{detail_url(allocation.pk)}versions/")
    assert response.json()["meta"]["count"] == 6


def test_effective_from_before_the_current_version_is_refused(api_client, etfs):
    allocation = make_allocation({etfs[0]: "1"}, effective_from=date(2026, 3, 1))
    before = counts()
    body = problem(api_client.put(detail_url(allocation.pk),
                                  {"allocation": [line(etfs[0], "1")], "effective_from": "2026-02-01"}, format="json"), 400)
    assert "effective_from" in error_fields(body)
    assert counts() == before

