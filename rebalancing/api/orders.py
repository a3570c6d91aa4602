"""Trade orders and portfolio orders (api.md "Orders"): serializers and thin views.

The rules live in `rebalancing.services.orders` (docs/orders.md). Lists are paginated
and run a fixed number of queries whatever the page size.
"""

import django_filters
from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api.exceptions import problems
from config.api.pagination import CappedCountPagination
from config.api.schema import states
from config.api.strict import UnknownFieldsRefused
from portfolios.api.fields import CurrencyCodeField, DecimalString
from portfolios.api.filters import InstrumentReferenceFilter
from portfolios.api.views import ApiViewSet
from portfolios.models import PortfolioAccount
from portfolios.models.fields import MONEY, PRICE, UNITS

from .. import services
from ..models import (
    ExecutionMethod,
    Initiation,
    PortfolioOrder,
    PortfolioOrderStatus,
    Side,
    TradeOrder,
    TradeOrderStatus,
)

# --- Serializers ---------------------------------------------------------------------


class TradeOrderSerializer(serializers.Serializer):
    """One trade order. Amounts and prices are in `currency`, the instrument's. Expects
    `instrument` selected."""

    order_id = serializers.UUIDField(source="id")
    account_id = serializers.UUIDField()
    instrument_id = serializers.UUIDField()
    isin = serializers.CharField(source="instrument.isin", allow_null=True)
    side = serializers.ChoiceField(Side.choices)
    transaction_type = serializers.CharField(help_text="BUY, SELL, or the sell-all type of the preferences.")
    units = DecimalString()
    unit_price = DecimalString(help_text="In `currency`.")
    trade_amount = DecimalString(help_text="In `currency`.")
    currency = serializers.CharField(help_text="The instrument's currency.")
    execution_method = serializers.ChoiceField(ExecutionMethod.choices)
    status = serializers.ChoiceField(TradeOrderStatus.choices)
    executed_units = DecimalString(help_text="Units executed so far.")
    execution_id = serializers.UUIDField(allow_null=True, help_text="The rebalancing execution that made it.")
    portfolio_order_id = serializers.UUIDField(allow_null=True, help_text="The portfolio order that made it.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class TradeOrderTransitionSerializer(UnknownFieldsRefused, serializers.Serializer):
    status = serializers.ChoiceField(TradeOrderStatus.choices, help_text="The status to move to.")
    executed_units = DecimalString(
        **UNITS, required=False, allow_null=True, default=None,
        help_text="Units of this fill (> 0), with PARTIALLY_EXECUTED (required) or EXECUTED_IN_MARKET (the last "
        "fill; left out, the units still open execute at the order's unit price).",
    )
    executed_price = DecimalString(
        **PRICE, required=False, allow_null=True, default=None,
        help_text="Price per unit of this fill in the order's currency (> 0); default the order's unit price.",
    )


class PortfolioOrderSerializer(serializers.Serializer):
    """A client's cash order and the trade orders it was split into. Expects
    `trade_orders` prefetched with their instruments."""

    portfolio_order_id = serializers.UUIDField(source="id")
    account_id = serializers.UUIDField()
    side = serializers.ChoiceField(Side.choices)
    cash_amount = DecimalString()
    currency = serializers.CharField()
    status = serializers.ChoiceField(
        PortfolioOrderStatus.choices, help_text="Derived from the trade orders (docs/orders.md)."
    )
    initiation = serializers.ChoiceField(Initiation.choices)
    user_id = serializers.CharField(help_text="The end user's reference sent with the order; \"\" when none.")
    trade_orders = TradeOrderSerializer(many=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class PortfolioOrderCreateSerializer(UnknownFieldsRefused, serializers.Serializer):
    account_id = serializers.PrimaryKeyRelatedField(
        queryset=PortfolioAccount.objects.all(),
        pk_field=serializers.UUIDField(),
        error_messages={"does_not_exist": "no account with id {pk_value}", "incorrect_type": "must be an account UUID"},
    )
    cash_amount = states(DecimalString(**MONEY, help_text="Greater than 0, in `currency`."), sign="positive")
    currency = CurrencyCodeField(help_text="The account's base currency or a currency it holds cash in.")
    side = serializers.ChoiceField(Side.choices, help_text="BUY invests the amount; SELL raises it.")
    user_id = serializers.CharField(
        required=False, max_length=255, allow_blank=True,
        help_text="Your reference of the end user behind the order: kept and returned as sent.",
    )


# --- Filters -------------------------------------------------------------------------


class TradeOrderFilter(django_filters.FilterSet):
    account_id = django_filters.UUIDFilter()
    status = django_filters.ChoiceFilter(choices=TradeOrderStatus.choices)
    execution_id = django_filters.UUIDFilter()
    instrument_id = InstrumentReferenceFilter(method="filter_instrument", help_text="An ISIN or a UUID.")

    class Meta:
        model = TradeOrder
        fields = ["account_id", "status", "execution_id", "instrument_id"]

    def filter_instrument(self, queryset, name, value):
        return queryset.filter(instrument__in=value)


class PortfolioOrderFilter(django_filters.FilterSet):
    account_id = django_filters.UUIDFilter()
    status = django_filters.ChoiceFilter(choices=PortfolioOrderStatus.choices)

    class Meta:
        model = PortfolioOrder
        fields = ["account_id", "status"]


# --- Views ---------------------------------------------------------------------------

ORDER_ID_PARAMETER = OpenApiParameter("order_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
PORTFOLIO_ORDER_ID_PARAMETER = OpenApiParameter("portfolio_order_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
TRANSITIONS_DESCRIPTION = (
    "Allowed transitions: "
    + "; ".join(
        f"{source} → {', '.join(services.allowed_transitions(source))}"
        for source in TradeOrderStatus.values
        if services.allowed_transitions(source)
    )
    + ". REPLACED is set by a rebalance only. Reaching SETTLED books the executed units and amount into the "
    "account's position and cash in the same transaction; a sell of more units than the account holds is a 409."
)


@extend_schema_view(
    list=extend_schema(summary="List trade orders",
                       responses={200: TradeOrderSerializer(many=True), **problems(400)}),
    retrieve=extend_schema(summary="Get a trade order", parameters=[ORDER_ID_PARAMETER],
                           responses={200: TradeOrderSerializer, **problems(404)}),
)
class TradeOrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = TradeOrder.objects.select_related("instrument").order_by("-created_at", "-id")
    serializer_class = TradeOrderSerializer
    pagination_class = CappedCountPagination  # no COUNT(*) of millions of rows per page
    filterset_class = TradeOrderFilter
    lookup_url_kwarg = "order_id"
    noun = "trade order"
    required_permissions = {"POST": ["rebalancing.change_tradeorder"]}

    @extend_schema(
        summary="Move a trade order along its status flow",
        description=TRANSITIONS_DESCRIPTION,
        parameters=[ORDER_ID_PARAMETER],
        request=TradeOrderTransitionSerializer,
        responses={200: TradeOrderSerializer, **problems(400, 404, 409)},
    )
    @action(detail=True, methods=["post"], url_path="transitions")
    def transitions(self, request, order_id=None):
        order = self.get_object()
        data = TradeOrderTransitionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order = services.trade_order_transition(order=order, user=request.user, **data.validated_data)
        return Response(TradeOrderSerializer(order).data)


def _portfolio_orders():
    trade_orders = TradeOrder.objects.select_related("instrument").order_by("created_at", "id")
    return PortfolioOrder.objects.prefetch_related(Prefetch("trade_orders", queryset=trade_orders)).order_by(
        "-created_at", "-id"
    )


@extend_schema_view(
    list=extend_schema(summary="List portfolio orders",
                       responses={200: PortfolioOrderSerializer(many=True), **problems(400)}),
    retrieve=extend_schema(summary="Get a portfolio order", parameters=[PORTFOLIO_ORDER_ID_PARAMETER],
                           responses={200: PortfolioOrderSerializer, **problems(404)}),
    create=extend_schema(
        summary="Invest or raise cash in a configured account",
        description="BUY invests `cash_amount` into the lines furthest below their target, never past it; SELL "
        "raises it by selling the lines furthest above their target first. The trade orders are created OPEN. "
        "422 when the account is not ACTIVE, is a sub-portfolio or locked, is not configured, (BUY) lacks the "
        "free cash, (SELL) holds less than the amount, or when the amount buys or sells no whole block.",
        request=PortfolioOrderCreateSerializer,
        responses={201: PortfolioOrderSerializer, **problems(400, 409, 422)},
    ),
)
class PortfolioOrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = _portfolio_orders()  # view_ / add_portfolioorder
    serializer_class = PortfolioOrderSerializer
    filterset_class = PortfolioOrderFilter
    lookup_url_kwarg = "portfolio_order_id"
    noun = "portfolio order"

    def create(self, request):
        data = PortfolioOrderCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        portfolio_order = services.portfolio_order_create(
            account=fields.pop("account_id"), user=request.user, **fields
        )
        portfolio_order = _portfolio_orders().get(pk=portfolio_order.pk)
        return Response(PortfolioOrderSerializer(portfolio_order).data, status=status.HTTP_201_CREATED)
