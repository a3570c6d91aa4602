"""The allocation page: every save is a new version, through allocation_validate/_update."""

import json
import shutil
import subprocess
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.utils import timezone

from portfolios import models
from tests.factories import InstrumentFactory, make_allocation, make_configuration
from tests.portfolios.admin.test_site import page_data, url


@pytest.fixture
def instruments(db):
    return [InstrumentFactory(name=f"ETF {n}") for n in range(3)]


@pytest.fixture
def allocation(instruments, superuser):
    a, b, _ = instruments
    return make_allocation({a: Decimal("0.6"), b: Decimal("0.4")}, user=superuser, name="Balanced")


def lines_of(version) -> dict:
    return {line.instrument_id: line.weight for line in version.lines.all()}


def line_forms(response):
    (lines,) = [inline.formset for inline in response.context["inline_admin_formsets"] if inline.formset.prefix == "lines"]
    return lines


def edit_page(client, allocation) -> dict:
    data = page_data(client.get(url(models.Allocation, "change", allocation.pk)))
    # The inline lists the current lines by weight: 0 is the 0.6 line, 1 the 0.4 line,
    # 2 the empty extra line.
    assert data["lines-0-weight"] == "0.6" and data["lines-TOTAL_FORMS"] == "3"  # no trailing zeros
    return data


def test_change_page_shows_current_lines_sum_and_versions(admin_client, allocation, instruments):
    response = admin_client.get(url(models.Allocation, "change", allocation.pk))
    assert response.status_code == 200
    formset = line_forms(response)
    assert [form.instance.weight for form in formset.initial_forms] == [Decimal("0.6"), Decimal("0.4")]
    form = response.context["adminform"].form
    assert form.initial["weight_type"] == "STATIC"
    assert form.initial["effective_from"] == timezone.localdate()
    content = response.content.decode()
    assert "100.00 % (non-future lines)" in content  # the saved state, computed on the server
    assert 'id="allocation-weight-sum"' in content  # the live figure the script fills
    assert "portfolios/allocation_weights.js" in content
    assert 'id="allocation-versions"' in content and "v1</a> (current)" in content


def test_valid_change_creates_a_new_version_and_keeps_the_old(admin_client, allocation, instruments, superuser):
    a, b, c = instruments
    first = allocation.current_version
    data = edit_page(admin_client, allocation) | {
        "lines-0-weight": "0.5",
        "lines-1-weight": "0.3",
        "lines-2-instrument": str(c.pk),
        "lines-2-weight": "0.2",
        "name": "Balanced II",
    }
    response = admin_client.post(url(models.Allocation, "change", allocation.pk), data)
    assert response.status_code == 302, response.context and response.context["errors"]

    allocation.refresh_from_db()
    assert allocation.versions.count() == 2
    assert allocation.name == "Balanced II"
    new = allocation.current_version
    assert (new.version, new.created_by) == (2, superuser)
    assert lines_of(new) == {a.pk: Decimal("0.5"), b.pk: Decimal("0.3"), c.pk: Decimal("0.2")}
    first.refresh_from_db()
    assert lines_of(first) == {a.pk: Decimal("0.6"), b.pk: Decimal("0.4")}  # untouched
    assert models.AllocationLine.objects.filter(allocation=allocation).count() == 5
    assert "Saved version 2" in LogEntry.objects.get(object_id=str(allocation.pk)).change_message

    # The page now edits version 2 and lists both versions.
    response = admin_client.get(url(models.Allocation, "change", allocation.pk))
    assert len(line_forms(response).initial_forms) == 3
    assert "v2</a> (current)" in response.content.decode() and ">v1</a>" in response.content.decode()


def test_removing_a_line_and_settings_go_into_the_new_version(admin_client, allocation, instruments):
    a, b, _ = instruments
    data = edit_page(admin_client, allocation) | {
        "lines-1-DELETE": "on",
        "lines-0-weight": "1",
        "weight_type": "PERIODICAL",
        "period_type": "MONTHLY",
        "period_count": "3",
        "effective_from": (timezone.localdate() + timedelta(days=7)).isoformat(),
    }
    assert admin_client.post(url(models.Allocation, "change", allocation.pk), data).status_code == 302
    allocation.refresh_from_db()
    version = allocation.current_version
    assert lines_of(version) == {a.pk: Decimal("1")}
    assert (version.weight_type, version.period_type, version.period_count) == ("PERIODICAL", "MONTHLY", 3)
    assert version.effective_from == timezone.localdate() + timedelta(days=7)


def test_normalize_scales_weights_given_on_any_scale(admin_client, allocation, instruments):
    a, b, _ = instruments
    data = edit_page(admin_client, allocation) | {"lines-0-weight": "50", "lines-1-weight": "150", "normalize": "on"}
    assert admin_client.post(url(models.Allocation, "change", allocation.pk), data).status_code == 302
    allocation.refresh_from_db()
    assert lines_of(allocation.current_version) == {a.pk: Decimal("0.25"), b.pk: Decimal("0.75")}


@pytest.mark.parametrize(
    ("change", "form_index", "field", "message"),
    [
        ({"lines-1-weight": "0"}, 1, "weight", "must be greater than 0"),
        ({"lines-1-instrument": "{a}"}, 1, "instrument", "is already in allocation[0]"),
        ({"lines-1-instrument": "{blocked}"}, 1, "instrument", "is not tradable"),
        ({"lines-0-min_weight": "0.7"}, 0, "min_weight", "0 ≤ min_weight ≤ weight"),
        ({"lines-1-max_weight": "0.3"}, 1, "max_weight", "weight ≤ max_weight ≤ 1"),
        ({"lines-2-instrument": "{c}", "lines-2-weight": "0.0000000000001"}, 2, "weight", "at most 12 decimal places"),
        ({"lines-1-weight": "1e30"}, 1, "weight", "Ensure that there are no more than"),
        # Line 0 is deleted: the service's allocation[0] is the page's line 1.
        ({"lines-0-DELETE": "on", "lines-1-weight": "-1"}, 1, "weight", "must be greater than 0"),
    ],
)
def test_invalid_line_is_refused_with_the_message_on_that_line(
    admin_client, allocation, instruments, change, form_index, field, message
):
    a, _, c = instruments
    blocked = InstrumentFactory(tradable=False)
    ids = {"a": str(a.pk), "c": str(c.pk), "blocked": str(blocked.pk)}
    data = edit_page(admin_client, allocation) | {key: value.format(**ids) for key, value in change.items()}
    response = admin_client.post(url(models.Allocation, "change", allocation.pk), data)

    assert response.status_code == 200
    forms = line_forms(response).forms
    assert message in " ".join(forms[form_index].errors.get(field, [])), [f.errors for f in forms]
    assert all(not form.errors for i, form in enumerate(forms) if i != form_index)
    assert models.AllocationVersion.objects.filter(allocation=allocation).count() == 1
    assert models.AllocationLine.objects.count() == 2


def test_weights_not_summing_to_one_are_refused_above_the_lines(admin_client, allocation):
    data = edit_page(admin_client, allocation) | {"lines-0-weight": "0.5"}
    response = admin_client.post(url(models.Allocation, "change", allocation.pk), data)
    assert response.status_code == 200
    formset = line_forms(response)
    assert "must sum to exactly 1, they sum to 0.9" in " ".join(formset.non_form_errors())
    assert "must sum to exactly 1" in response.content.decode()
    assert models.AllocationVersion.objects.filter(allocation=allocation).count() == 1


def test_all_lines_deleted_is_refused(admin_client, allocation):
    data = edit_page(admin_client, allocation) | {"lines-0-DELETE": "on", "lines-1-DELETE": "on"}
    response = admin_client.post(url(models.Allocation, "change", allocation.pk), data)
    assert response.status_code == 200
    assert "at least one line is required" in " ".join(line_forms(response).non_form_errors())


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"effective_from": "2000-01-01"}, "effective_from", "must not be before the current version"),
        ({"weight_type": "PERIODICAL"}, "period_type", "required when weight_type is PERIODICAL"),
        ({"period_type": "DAILY"}, "period_type", "only a PERIODICAL allocation has a period"),
        ({"base_currency": "XYZ"}, "base_currency", "not an ISO 4217 currency code"),
    ],
)
def test_invalid_settings_are_refused_on_their_field(admin_client, allocation, change, field, message):
    data = edit_page(admin_client, allocation) | change
    response = admin_client.post(url(models.Allocation, "change", allocation.pk), data)
    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors[field])
    assert models.AllocationVersion.objects.filter(allocation=allocation).count() == 1


def test_add_allocation_through_the_admin(admin_client, instruments, superuser):
    a, b, _ = instruments
    response = admin_client.get(url(models.Allocation, "add"))
    data = page_data(response) | {
        "name": "Growth",
        "base_currency": "EUR",
        "lines-0-instrument": str(a.pk),
        "lines-0-weight": "0.7",
        "lines-1-instrument": str(b.pk),
        "lines-1-weight": "0.3",
        "lines-1-max_weight": "0.4",
        "_continue": "Save and continue editing",
    }
    response = admin_client.post(url(models.Allocation, "add"), data)
    assert response.status_code == 302
    allocation = models.Allocation.objects.get(name="Growth")
    assert response.url == url(models.Allocation, "change", allocation.pk)  # the created allocation
    version = allocation.current_version
    assert (version.version, version.created_by, allocation.owner) == (1, superuser, superuser)
    assert lines_of(version) == {a.pk: Decimal("0.7"), b.pk: Decimal("0.3")}
    assert version.lines.get(instrument=b).max_weight == Decimal("0.4")
    assert version.lines.get(instrument=a).instrument_id_type == models.InstrumentIdType.ISIN


def test_invalid_add_creates_nothing(admin_client, instruments):
    a, b, _ = instruments
    data = page_data(admin_client.get(url(models.Allocation, "add"))) | {
        "name": "Broken",
        "lines-0-instrument": str(a.pk),
        "lines-0-weight": "0.7",
        "lines-1-instrument": str(a.pk),
        "lines-1-weight": "0.3",
    }
    response = admin_client.post(url(models.Allocation, "add"), data)
    assert response.status_code == 200
    assert "is already in allocation[0]" in " ".join(line_forms(response).forms[1].errors["instrument"])
    assert not models.Allocation.objects.exists()


def test_future_lines_are_outside_the_sum(admin_client, allocation, instruments):
    future = InstrumentFactory(type=models.InstrumentType.FUTURE, futures_cost=models.FuturesCost.LATER)
    data = edit_page(admin_client, allocation) | {"lines-2-instrument": str(future.pk), "lines-2-weight": "0.5"}
    assert admin_client.post(url(models.Allocation, "change", allocation.pk), data).status_code == 302
    content = admin_client.get(url(models.Allocation, "change", allocation.pk)).content.decode()
    assert "100.00 % (non-future lines); futures add 50.00 %" in content


def test_version_page_shows_its_lines_read_only(admin_client, allocation, instruments):
    version = allocation.current_version
    response = admin_client.get(url(models.AllocationVersion, "change", version.pk))
    assert response.status_code == 200
    assert not response.context["has_change_permission"]
    assert instruments[0].isin in response.content.decode()


def test_delete_goes_through_the_service_and_respects_configurations(admin_client, allocation):
    unused = make_allocation(name="Unused")
    assert admin_client.post(url(models.Allocation, "delete", unused.pk), {"post": "yes"}).status_code == 302
    assert not models.Allocation.objects.filter(pk=unused.pk).exists()

    make_configuration(allocation=allocation)
    response = admin_client.post(url(models.Allocation, "delete", allocation.pk), {"post": "yes"})
    assert response.status_code == 200  # Django lists the protected configuration instead
    assert models.Allocation.objects.filter(pk=allocation.pk).exists()


NODE_HARNESS = """
const rows = %(rows)s.map(([weight, deleted]) => ({
    querySelector: (selector) => selector.includes("DELETE") ? {checked: deleted} : {value: weight},
}));
const sum = {textContent: ""}, note = {textContent: ""};
const output = {dataset: {prefix: "lines"}, querySelector: (selector) => selector === "[data-sum]" ? sum : note};
const normalize = {checked: %(normalize)s};
const listeners = {};
global.document = {
    readyState: "complete",
    getElementById: (id) => ({"allocation-weight-sum": output, "id_normalize": normalize})[id] || null,
    querySelectorAll: (selector) => selector.startsWith("#lines-group") ? rows : [],
    addEventListener: (type, listener) => { listeners[type] = listener; },
};
require(%(script)s);
console.log(JSON.stringify([sum.textContent, note.textContent]));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
@pytest.mark.parametrize(
    ("rows", "normalize", "expected_sum", "expected_note"),
    [
        ([["0.6", False], ["0.3", False], ["0.25", True], ["0.1", False]], False, "1", "(= 1)"),
        ([["0.6", False], ["0.3", False], ["0.15", False]], False, "1.05", "must be exactly 1"),
        ([["50", False], ["150", False], ["", False]], True, "200", "will be divided by this sum"),
        ([["0.5", False], ["abc", False]], False, "0.5", "1 weight is not a number"),
    ],
)
def test_live_weight_sum_script_adds_exactly(rows, normalize, expected_sum, expected_note):
    script = Path(settings.BASE_DIR) / "portfolios/static/portfolios/allocation_weights.js"
    harness = NODE_HARNESS % {"rows": json.dumps(rows), "normalize": json.dumps(normalize), "script": json.dumps(str(script))}
    result = subprocess.run(["node", "-e", harness], capture_output=True, text=True, timeout=30, check=True)
    total, note = json.loads(result.stdout)
    assert total == expected_sum  # 0.6 + 0.3 + 0.15 as floats would be 1.0499999999999998
    assert expected_note in note
