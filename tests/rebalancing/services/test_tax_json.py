"""The tax JSON a chunk writes as text is the JSON the API's reading expects."""

import json
import uuid
from decimal import Decimal

from rebalancing.engine import RebalanceResult, ResultStatus
from rebalancing.engine.tax import SellLots, TaxOutcome
from rebalancing.services.bulk import JsonText
from rebalancing.services.tax import (
    estimated_gain_json, estimated_gain_text, tax_order_rows, tax_orders_json, tax_orders_text,
)


def test_the_text_forms_are_the_json_forms():
    root, sub, x, y = (uuid.uuid4() for _ in range(4))
    outcome = TaxOutcome(
        RebalanceResult(root, ResultStatus.PROPOSED),
        sells=(
            SellLots(root, x, (("b0c1", Decimal("1.5")), (uuid.uuid4(), Decimal("2E+1"))), Decimal("-12.30")),
            SellLots(sub, y, (), None, Decimal("3"), Decimal("3")),
            SellLots(root, y, (("a9", Decimal("0.00000001")),), Decimal("0E-8")),
        ),
        short=Decimal("-12.30"), long=Decimal("0.00"), unknown_cost_units=Decimal("3.0"),
    )
    gain, orders = estimated_gain_text(outcome), tax_orders_text(outcome)
    assert type(gain) is JsonText and type(orders) is JsonText
    assert json.loads(gain) == estimated_gain_json(outcome) == {"short": "-12.3", "long": "0", "unknown_cost_units": "3"}
    assert json.loads(orders) == tax_orders_json(outcome)
    assert tax_order_rows(json.loads(orders))[(str(root), str(x))]["estimated_gain"] == "-12.3"
    assert not any(c in gain + orders for c in "\t\n\r\\")
