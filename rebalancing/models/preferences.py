"""Rebalance preferences: the global row and per-account overrides (spec §4.2)."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from portfolios.models import LotMethod, PortfolioAccount, RestrictedWeightTo
from portfolios.models.fields import MONEY

PCT = {"max_digits": 7, "decimal_places": 4}


class OrderBasis(models.TextChoices):
    TRADE_AMOUNT = "TRADE_AMOUNT", "Trade amount (keep the amount, derive the unit price)"
    UNITS = "UNITS", "Units (keep the market price, derive the amount)"


class AvailableCash(models.TextChoices):
    ALL_ACCOUNTS = "ALL_ACCOUNTS", "All cash accounts"
    CASH_ACCOUNTS_ONLY = "CASH_ACCOUNTS_ONLY", "Cash accounts only (not settlement or margin)"
    DEFAULT_ACCOUNT_ONLY = "DEFAULT_ACCOUNT_ONLY", "The default cash account only"


class FxMode(models.TextChoices):
    AUTO = "AUTO", "Automatic (the custodian converts; no FX order)"
    EXPLICIT = "EXPLICIT", "Explicit (the rebalance proposes FX orders)"


class Method(models.TextChoices):
    CONSERVATIVE = "CONSERVATIVE"
    EXCHANGE = "EXCHANGE"
    FULL = "FULL"
    FULL_INCLUDING_ORDERS = "FULL_INCLUDING_ORDERS"


class RebalancePreferences(models.Model):
    """The house rules of rebalancing (spec §4.2).

    One global row (`is_global`) plus at most one override row per account. Every
    field is nullable: null inherits (account → global → the built-in default).
    """

    account = models.OneToOneField(
        PortfolioAccount, null=True, blank=True, on_delete=models.CASCADE, related_name="rebalance_preferences"
    )
    is_global = models.BooleanField(default=False, editable=False)
    cash_range_min = models.DecimalField(**MONEY, null=True, blank=True)
    cash_range_max = models.DecimalField(**MONEY, null=True, blank=True)
    negative_cash_buffer_pct = models.DecimalField(**PCT, null=True, blank=True)
    negative_cash_buffer_amount = models.DecimalField(**MONEY, null=True, blank=True)
    positive_cash_buffer_pct = models.DecimalField(**PCT, null=True, blank=True)
    positive_cash_buffer_amount = models.DecimalField(**MONEY, null=True, blank=True)
    order_basis = models.CharField(max_length=12, choices=OrderBasis.choices, null=True, blank=True)
    cash_from_sells_pct = models.DecimalField(**PCT, null=True, blank=True)
    min_trade_amount = models.DecimalField(**MONEY, null=True, blank=True)
    filter_by_min_max = models.BooleanField(null=True, blank=True)
    sell_all_transaction_type = models.CharField(max_length=30, null=True, blank=True)
    available_cash = models.CharField(max_length=20, choices=AvailableCash.choices, null=True, blank=True)
    price_source = models.CharField(max_length=50, null=True, blank=True)
    default_decimals = models.JSONField(
        null=True, blank=True, help_text='Decimals per instrument type when an instrument has no block size, e.g. {"FUND": 3}.'
    )
    futures_fee_pct = models.DecimalField(**PCT, null=True, blank=True)
    restricted_weight_to = models.CharField(
        max_length=10, choices=RestrictedWeightTo.choices, null=True, blank=True,
        help_text="Where a model line's weight goes when the portfolio may not buy it and no substitute fits (§11).",
    )
    fx_mode = models.CharField(
        max_length=8, choices=FxMode.choices, null=True, blank=True,
        help_text="AUTO: a buy in a currency the portfolio lacks is paid from the default cash account at the latest "
                  "FX rate. EXPLICIT: the rebalance proposes one FX order per currency it needs (§9).",
    )
    fx_repatriate = models.BooleanField(
        null=True, blank=True,
        help_text="With EXPLICIT FX: sell cash above a currency's target back into the default cash account's currency.",
    )
    use_price_connector = models.BooleanField(
        null=True, blank=True,
        help_text="Ask the live price connector (setting PRICE_CONNECTOR) for prices; instruments it does not price "
                  "fall back to the latest stored price.",
    )
    # Tax lots and tax-aware rebalancing (§12, docs/tax.md).
    lot_method = models.CharField(
        max_length=8, choices=LotMethod.choices, null=True, blank=True,
        help_text="Which lots a settled sell (or a snapshot removing units) relieves first.",
    )
    long_term_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="A lot held more than this many days realizes a LONG-term gain."
    )
    tax_aware = models.BooleanField(null=True, blank=True, help_text="Rebalance with the lots' gains in mind (§12).")
    max_realized_gain = models.DecimalField(
        **MONEY, null=True, blank=True,
        help_text="Per calendar year: this year's realized gains plus a run's estimate may not exceed it (base "
                  "currency); empty: no limit.",
    )
    avoid_short_term_gains = models.BooleanField(null=True, blank=True)
    sell_removed_lines_regardless = models.BooleanField(
        null=True, blank=True, help_text="With avoid_short_term_gains: NO_HOLD lines and lines removed from the "
                                         "model are sold all the same.",
    )
    harvest_losses = models.BooleanField(null=True, blank=True)
    harvest_min_loss_pct = models.DecimalField(**PCT, null=True, blank=True)
    harvest_min_loss_amount = models.DecimalField(**MONEY, null=True, blank=True)
    wash_sale_days = models.PositiveIntegerField(null=True, blank=True)
    # Four-eyes approval of large executions (docs/executions.md): the global row only.
    approval_gross_amount = models.DecimalField(
        **MONEY, null=True, blank=True,
        help_text="An execution whose trade orders add up to more than this (Σ |trade amount| in the approval "
                  "currency) waits for approval; empty: no limit.",
    )
    approval_order_count = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="An execution writing more trade orders than this waits for approval; empty: no limit.",
    )
    approval_currency = models.CharField(
        max_length=3, default="EUR", help_text="The currency of the approval gross amount (ISO 4217)."
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )

    class Meta:
        verbose_name = "rebalance preferences"
        verbose_name_plural = "rebalance preferences"
        constraints = [
            models.UniqueConstraint(fields=["is_global"], condition=Q(is_global=True), name="preferences_one_global_row"),
            models.CheckConstraint(
                condition=(Q(is_global=True) & Q(account__isnull=True)) | (Q(is_global=False) & Q(account__isnull=False)),
                name="preferences_global_xor_account",
            ),
            *[
                models.CheckConstraint(
                    condition=Q(**{f"{name}__isnull": True}) | (Q(**{f"{name}__gte": 0}) & Q(**{f"{name}__lte": 100})),
                    name=f"preferences_{name}_0_to_100",
                )
                for name in (
                    "negative_cash_buffer_pct", "positive_cash_buffer_pct", "cash_from_sells_pct", "futures_fee_pct",
                    "harvest_min_loss_pct",
                )
            ],
            *[
                models.CheckConstraint(
                    condition=Q(**{f"{name}__isnull": True}) | Q(**{f"{name}__gte": 0}), name=f"preferences_{name}_not_negative"
                )
                for name in (
                    "negative_cash_buffer_amount", "positive_cash_buffer_amount", "min_trade_amount",
                    "max_realized_gain", "harvest_min_loss_amount",
                )
            ],
            models.CheckConstraint(
                condition=Q(approval_gross_amount__isnull=True) | Q(approval_gross_amount__gte=0),
                name="preferences_approval_gross_amount_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(approval_order_count__isnull=True) | Q(approval_order_count__gte=1),
                name="preferences_approval_order_count_positive",
            ),
        ]

    def __str__(self):
        return "Global default preferences" if self.is_global else f"Preferences of {self.account}"


# --- Executions, trade orders, portfolio orders (spec §1, §5, §6) ------------------
