"""Fuzz the API against its own OpenAPI document with schemathesis.

The document is generated from the code (drf-spectacular) when this module is
imported: schemathesis' pytest fixture loader breaks on pytest 9.2, so the schema is
loaded at module level. One test per operation (GET, POST, PUT, PATCH; DELETE is left
out, it would only remove the seeded rows), each sending up to MAX_EXAMPLES generated
requests (valid and invalid ones) through Django's WSGI handler, authenticated with a
superuser's token, on a small seeded book (path ids: generated ones, and those of
existing rows). Any 5xx, any answer whose status, content type, body or headers the
document does not declare, any request the document forbids that is accepted, and any
request it allows that is refused other than by a rule it cannot state
(UNSTATEABLE_RULES), fails the test.

Runs are reproducible (Hypothesis derandomized, no example database): a failure
shows the request that caused it and comes back on every run until fixed.
"""

import json
import os
import re
import uuid

import pytest
import schemathesis
from django.apps import apps
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.core.failures import Failure
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from portfolios.services.demo import demo_book_load
from tests.factories import UserFactory, api_token_key

MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))  # bench/fuzz.py runs 100
REPORT = os.environ.get("FUZZ_REPORT")  # bench/fuzz.py: one JSON line per case
# bench/fuzz.py --keep-going: record a failing case and go on (every example runs, so all
# the causes show in one run) instead of stopping at the first failure and shrinking it.
KEEP_GOING = bool(REPORT and os.environ.get("FUZZ_KEEP_GOING"))
FUZZED_METHODS = ["GET", "POST", "PUT", "PATCH"]
# Every check that applies to one request: the stateful ones (use-after-free, resource
# availability) need links between operations the document does not declare.
# `positive_data_accepted` is schemathesis' positive_data_acceptance but for the rules the
# document cannot state (UNSTATEABLE_RULES).
CHECKS = [
    not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
    response_headers_conformance, missing_required_header, unsupported_method, negative_data_rejection,
]

# The rules a request the document allows may still break, since OpenAPI 3.0 cannot state
# them (docs/api.md, "The schema is the contract"): the state of the book (a row named
# must exist, a name must be free, the password must be right) and rules across fields.
# Each is (field path, message), both regular expressions searched in one item of the
# problem's `errors`. A 400 whose every error is one of these, or a 422 (the contract's
# answer to a well-formed request a business rule refuses), is not a fault of the
# document; any other 400 to a request it allows is.
UNSTATEABLE_RULES = {
    # The state of the book.
    "a row named must exist": (r"", r"^no [a-z ]+ with (id|ISIN)"),
    "a name must be free": (r"^(currency|name)$", r"already exists|exists already"),
    "the password must be right": (r"^$", r"^Unable to log in with provided credentials\.$"),
    # Checks no pattern states.
    "an ISIN's country code and check digit": (
        r"isin$", r"is not a valid ISIN \((the number's checksum or check digit is invalid|one of the parts of the "
        r"number are invalid or unknown)\)\.?$"),
    # schemathesis draws a `format: binary` body (a file upload) without its minLength.
    "an upload carries its file": (r"^file$", r"^send the CSV file as the body"),
    # Rules across fields of one body, or across the items of a list.
    "instrument: name unless CASH, no ISIN for CASH, futures cost only for a FUTURE": (
        r"^(name|isin|futures_cost)$",
        r"^This field cannot be blank\.$|^a CASH instrument has no ISIN|^only a FUTURE has a futures cost mode$"),
    "allocation: a period for PERIODICAL only, each instrument once and tradable, weights summing to 1": (
        r"^(period_type|period_count|effective_from|allocation(\[\d+\]\.[a-z_]+)?)$",
        r"PERIODICAL|is already in allocation\[|is not tradable|must sum to exactly 1|^normalize needs|"
        r"^must satisfy (0 ≤ min_weight ≤ weight|weight ≤ max_weight ≤ 1)$|as instrument_id_type says$|"
        r"^must not be before the current version's effective_from|^at most \d+ decimal places$|^must be below 10$"),
    "holdings: each cash account once, one default, each instrument once": (
        r"^(cash|positions)\[\d+\]\.(currency|is_default|instrument_id)$",
        r"is already in (cash|positions)\[|only one cash account can be the default"),
    "execution: one of accounts, allocation_id, all_accounts": (r"^accounts$", r"^give (only )?one of (accounts|allocation_id)"),
    "strategy: the fields its type needs, and no other": (
        r"^(strategy\.)?(type|period_type|period_count|anchor_date|absolute_drift|relative_drift)$",
        r"is required for a|must be null: a|needs absolute_drift and/or relative_drift"),
    "cash range: min not above max": (r"cash_range_max$", r"^must not be below cash_range_min$"),
    "restriction entry: effective_to not before effective_from": (
        r"^entries\[\d+\]\.effective_to$", r"^must not be before effective_from$"),
    "FX rate: quote other than base": (r"^rates\[\d+\]\.quote$", r"^must differ from base$"),
    "savings plan: a WEEKLY day is a weekday": (r"^day$", r"for a WEEKLY plan"),
}


def unstateable_rules(response) -> list[str] | None:
    """The names of the UNSTATEABLE_RULES a refusal is down to, or None if it is not
    down to them alone."""
    if response.status_code == 422:
        return ["a business rule (422)"]
    if response.status_code != 400:
        return None
    try:
        errors = json.loads(response.content).get("errors") or []
    except ValueError:
        return None
    names = []
    for error in errors:
        name = next((name for name, (field, message) in UNSTATEABLE_RULES.items()
                     if re.search(field, error.get("field", "")) and re.search(message, error.get("message", ""))),
                    None)
        if name is None:
            return None
        names.append(name)
    return sorted(set(names)) or None


def positive_data_accepted(ctx, response, case):
    """schemathesis' positive_data_acceptance, letting pass a refusal by UNSTATEABLE_RULES."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except Failure:
        if unstateable_rules(response) is None:
            raise
        return None


CHECKS.append(positive_data_accepted)


def openapi_document() -> dict:
    """The document GET /api/v1/schema/ serves, as plain JSON."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


schema = schemathesis.openapi.from_dict(openapi_document()).include(method=FUZZED_METHODS)
schema.app = WSGIHandler()

# A path parameter naming a model (`account_id`, `execution_id`) also takes the ids of
# existing rows, so detail routes run their real work and not only their 404.
PARAMETER_MODELS = {"account": "portfolios.PortfolioAccount"}


def existing_ids(parameter: str) -> list[str]:
    stem = parameter.removesuffix("_id").replace("_", "")
    label = PARAMETER_MODELS.get(stem)
    model = apps.get_model(label) if label else next(
        (m for m in apps.get_models() if m._meta.model_name == stem), None
    )
    if model is None:
        return []
    rows = list(model._default_manager.order_by("pk")[:3])
    ids = [str(row.pk) for row in rows]
    if stem == "instrument":  # an instrument is also named by its ISIN
        ids += [row.isin for row in rows if row.isin]
    return ids


def well_formed(value) -> bool:
    """A generated path value a real id may stand in for: not one meant to be invalid
    (a negative case must stay negative)."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    if not path_parameters:
        return st.just(path_parameters)
    return st.fixed_dictionaries({
        name: st.sampled_from([value, *existing_ids(name)]) if well_formed(value) else st.just(value)
        for name, value in path_parameters.items()
    })


@pytest.fixture
def fuzz_headers(db):
    """A seeded book and a superuser's token header.

    The requests go through Django's real WSGI handler inside the test's transaction,
    so, as Django's test client does, keep it from closing the connection (and with it
    the transaction) at the start and end of each request.
    """
    demo_book_load(accounts=6, days=5, seed=11)
    user = UserFactory(username="fuzzer", is_staff=True, is_superuser=True)
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield {"Authorization": f"Token {api_token_key(user)}"}
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_answers_as_its_schema_says(case, fuzz_headers, security_count):
    response = case.call(headers=fuzz_headers)
    security_count("API fuzz cases", 1)
    failures, messages = [], []
    try:
        case.validate_response(response, checks=CHECKS)
    except BaseException as group:  # schemathesis' FailureGroup: one exception per failed check
        exceptions = getattr(group, "exceptions", [group])
        failures = [str(getattr(e, "title", type(e).__name__)) for e in exceptions]
        messages = [str(e)[:400] for e in exceptions]
        if not KEEP_GOING:
            raise
    finally:
        if REPORT:
            with open(REPORT, "a") as report:
                row = {"operation": case.operation.label, "status": response.status_code, "failures": failures}
                if case.meta and case.meta.generation.mode.is_positive and response.status_code in (400, 422):
                    row["unstateable"] = unstateable_rules(response)
                if failures:  # what bench/fuzz.py --details prints: the request and the answer
                    row["request"] = {"path": case.formatted_path, "media_type": case.media_type,
                                      "query": case.query, "headers": {
                        k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"},
                        "body": None if isinstance(case.body, NotSet) else case.body}
                    row["response"] = response.text[:2000]
                    row["messages"] = messages
                report.write(json.dumps(row, default=str) + "\n")


def test_every_fuzzed_operation_is_in_the_document():
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25, len(operations)
    assert {operation.method.upper() for operation in operations} == set(FUZZED_METHODS)
