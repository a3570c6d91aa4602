"""Fuzz the API against its own OpenAPI document with schemathesis.

The document is generated from the code (drf-spectacular) when this module is
imported: schemathesis' pytest fixture loader breaks on pytest 9.2, so the schema is
loaded at module level. One test per operation (GET, POST, PUT, PATCH; DELETE is left
out, it would only remove the seeded rows), each sending up to MAX_EXAMPLES generated
requests (valid and invalid ones) through Django's WSGI handler, authenticated with a
superuser's token, on a small seeded book (path ids: generated ones, and those of
existing rows). Any 5xx, or any answer whose status,
content type or body the document does not declare, fails the test.

Runs are reproducible (Hypothesis derandomized, no example database): a failure
shows the request that caused it and comes back on every run until fixed.
"""

import json

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
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from portfolios.services.demo import demo_book_load
from tests.factories import UserFactory, api_token_key

MAX_EXAMPLES = 25
FUZZED_METHODS = ["GET", "POST", "PUT", "PATCH"]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


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


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    if not path_parameters:
        return st.just(path_parameters)
    return st.fixed_dictionaries(
        {name: st.sampled_from([value, *existing_ids(name)]) for name, value in path_parameters.items()}
    )


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
    case.validate_response(response, checks=CHECKS)


def test_every_fuzzed_operation_is_in_the_document():
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25, len(operations)
    assert {operation.method.upper() for operation in operations} == set(FUZZED_METHODS)
