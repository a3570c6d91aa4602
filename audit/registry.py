"""The audited models: these have a History page of audit entries and a choice in the
audit log's model filter. Which of them auditlog's signals track on their own is
settings.AUDITLOG_INCLUDE_TRACKING_MODELS; the others are recorded by their services."""

from functools import cache

from django.apps import apps

AUDITED = (
    "portfolios.allocation",
    "portfolios.restrictionlist",
    "portfolios.instrument",
    "portfolios.portfolioaccount",
    "portfolios.configuration",
    "rebalancing.rebalancepreferences",
    "rebalancing.strategy",
    "rebalancing.savingsplan",
    "rebalancing.execution",
    "rebalancing.tradeorder",
    "imports.importjob",
)


@cache
def audited_models() -> dict:
    """{"app_label.model_name": model class}, in AUDITED's order."""
    return {label: apps.get_model(label) for label in AUDITED}


def is_audited(model) -> bool:
    return model._meta.label_lower in AUDITED
