"""The engine may not import Django, so the choices of the models repeat its enums.
They must not drift apart: a value the engine produces must be storable, and a value
stored must be one the engine understands."""

import pytest
from django.conf import settings

if not settings.configured:  # the engine's own run, `-p no:django` (docs/engine.md): no models to compare
    pytest.skip("compares the engine with the Django models: needs Django", allow_module_level=True)

from portfolios import models as portfolio_models  # noqa: E402
from rebalancing import engine  # noqa: E402
from rebalancing import models as rebalancing_models  # noqa: E402

PAIRS = [
    (engine.InstrumentType, portfolio_models.InstrumentType),
    (engine.FuturesCost, portfolio_models.FuturesCost),
    (engine.CashAccountKind, portfolio_models.CashKind),
    (engine.WeightType, portfolio_models.WeightType),
    (engine.PeriodType, portfolio_models.PeriodType),
    (engine.OrderBasis, rebalancing_models.OrderBasis),
    (engine.AvailableCash, rebalancing_models.AvailableCash),
    (engine.Method, rebalancing_models.Method),
    (engine.FxMode, rebalancing_models.FxMode),
    (engine.ResultStatus, rebalancing_models.ResultStatus),
    (engine.Side, rebalancing_models.Side),
    (engine.ExecutionMethod, rebalancing_models.ExecutionMethod),
    (engine.OrderStatus, rebalancing_models.TradeOrderStatus),
]


@pytest.mark.parametrize(("engine_enum", "choices"), PAIRS, ids=lambda e: e.__name__)
def test_model_choices_mirror_the_engine(engine_enum, choices):
    assert set(choices.values) == {member.value for member in engine_enum}
