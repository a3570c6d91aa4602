"""Thin adapters: validate the shape with a serializer, call one service, serialize.

Every list is paginated and runs a fixed number of queries whatever the page size.
"""

from collections import defaultdict

from django.db import transaction
from django.db.models import Prefetch
from django.http import Http404, HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView, ListAPIView
from rest_framework.response import Response

from config.api.exceptions import problems
from config.api.pagination import MetaDataPagination
from config.api.idempotency import IdempotentMixin
from core.errors import BusinessRuleViolation, FieldError, InvalidInput
from core.ids import parse_uuid
from rebalancing.models import Strategy
from rebalancing.services import strategies

from .. import services
from ..models import (
    Allocation,
    AllocationLine,
    AllocationVersion,
    Configuration,
    FxRate,
    Instrument,
    PortfolioAccount,
    Position,
    Price,
)
from ..selectors import account_lots, account_valuations, instruments_by_reference, realized_gains, realized_totals
from . import filters
from . import serializers as s


def _lines_prefetch(lookup: str) -> Prefetch:
    """Allocation lines in the order they were sent, with their instruments."""
    return Prefetch(lookup, queryset=AllocationLine.objects.select_related("instrument").order_by("id"))


class NamedNotFoundMixin:
    """404 problem details that say what was not found."""

    noun = "object"

    def get_object(self):
        try:
            return super().get_object()
        except Http404:
            raise NotFound(f"no {self.noun} with id {self.kwargs.get(self.lookup_url_kwarg)}") from None


class ApiViewSet(IdempotentMixin, NamedNotFoundMixin, viewsets.GenericViewSet):
    pass


class ApiView(IdempotentMixin, NamedNotFoundMixin, GenericAPIView):
    pass


# --- Instruments and market data ----------------------------------------------------

INSTRUMENT_ID_PARAMETER = OpenApiParameter(
    "instrument_id", str, OpenApiParameter.PATH, description="The instrument's UUID or ISIN."
)


@extend_schema_view(
    list=extend_schema(summary="List instruments", responses={200: s.InstrumentSerializer(many=True), **problems(400)}),
    create=extend_schema(summary="Create an instrument", request=s.InstrumentCreateSerializer,
                         responses={201: s.InstrumentSerializer, **problems(400, 409)}),
    retrieve=extend_schema(summary="Get an instrument", parameters=[INSTRUMENT_ID_PARAMETER],
                           responses={200: s.InstrumentSerializer, **problems(404)}),
    partial_update=extend_schema(summary="Change an instrument (type and currency are fixed)",
                                 parameters=[INSTRUMENT_ID_PARAMETER], request=s.InstrumentUpdateSerializer,
                                 responses={200: s.InstrumentSerializer, **problems(400, 404)}),
)
class InstrumentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = Instrument.objects.order_by("name", "id")
    serializer_class = s.InstrumentSerializer
    filterset_class = filters.InstrumentFilter
    lookup_url_kwarg = "instrument_id"
    noun = "instrument"

    def get_object(self):
        reference = self.kwargs[self.lookup_url_kwarg]
        instrument = instruments_by_reference([reference]).get(reference)
        if instrument is None:
            raise NotFound(f"no instrument with ISIN or UUID {reference}")
        self.check_object_permissions(self.request, instrument)
        return instrument

    def create(self, request):
        data = s.InstrumentCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        instrument = services.instrument_create(**data.validated_data)
        return Response(s.InstrumentSerializer(instrument).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, instrument_id=None):
        instrument = self.get_object()
        data = s.InstrumentUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        instrument = services.instrument_update(instrument=instrument, **data.validated_data)
        return Response(s.InstrumentSerializer(instrument).data)


UPSERT_PERMISSIONS = "portfolios.add_{model}", "portfolios.change_{model}"


@extend_schema_view(
    list=extend_schema(summary="List prices", responses={200: s.PriceSerializer(many=True), **problems(400)}),
    create=extend_schema(
        summary="Upsert prices (all rows or none)",
        description="Up to 10 000 rows; a row with the same instrument, source and date replaces the stored value.",
        request=s.PricesUpsertSerializer, responses={200: s.UpsertedSerializer, **problems(400, 409)},
    ),
)
class PriceViewSet(mixins.ListModelMixin, ApiViewSet):
    queryset = Price.objects.select_related("instrument").order_by("instrument__isin", "instrument_id", "source", "-effective_at")
    serializer_class = s.PriceSerializer
    filterset_class = filters.PriceFilter
    required_permissions = {"POST": [p.format(model="price") for p in UPSERT_PERMISSIONS]}

    def create(self, request):
        data = s.PricesUpsertSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rows = [
            services.PriceRow(**{**row, "effective_at": row["effective_at"][0], "quoted_at": row["effective_at"][1]})
            for row in data.validated_data["prices"]
        ]
        return Response({"upserted": services.prices_upsert(rows=rows)})


@extend_schema_view(
    list=extend_schema(summary="List FX rates", responses={200: s.FxRateSerializer(many=True), **problems(400)}),
    create=extend_schema(
        summary="Upsert FX rates (all rows or none)",
        description="A rate is units of quote per 1 base; the same pair and date replaces the stored rate.",
        request=s.FxRatesUpsertSerializer, responses={200: s.UpsertedSerializer, **problems(400, 409)},
    ),
)
class FxRateViewSet(mixins.ListModelMixin, ApiViewSet):
    queryset = FxRate.objects.order_by("base", "quote", "-effective_at")
    serializer_class = s.FxRateSerializer
    filterset_class = filters.FxRateFilter
    required_permissions = {"POST": [p.format(model="fxrate") for p in UPSERT_PERMISSIONS]}

    def create(self, request):
        data = s.FxRatesUpsertSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rows = [
            services.FxRateRow(**{**row, "effective_at": row["effective_at"][0], "quoted_at": row["effective_at"][1]})
            for row in data.validated_data["rates"]
        ]
        return Response({"upserted": services.fx_rates_upsert(rows=rows)})


# --- Allocations ---------------------------------------------------------------------

def _allocation_input(validated: dict) -> services.AllocationInput:
    return services.AllocationInput(
        lines=[services.LineInput(**line) for line in validated["allocation"]],
        name=validated["name"],
        base_currency=validated["base_currency"],
        weight_type=validated["weight_type"],
        period_type=validated["period_type"],
        period_count=validated["period_count"],
        effective_from=validated["effective_from"],
        normalize=validated["normalize"],
    )


@extend_schema_view(
    list=extend_schema(summary="List allocations", responses={200: s.AllocationSerializer(many=True), **problems(400)}),
    create=extend_schema(summary="Create an allocation", request=s.AllocationInputSerializer,
                         responses={201: s.AllocationSerializer, **problems(400, 409)}),
    retrieve=extend_schema(summary="Get an allocation", responses={200: s.AllocationSerializer, **problems(404)}),
    update=extend_schema(
        summary="Replace an allocation (a new version)",
        description="The complete new state, never a delta. The previous versions are kept.",
        request=s.AllocationInputSerializer, responses={200: s.AllocationSerializer, **problems(400, 404)},
    ),
    destroy=extend_schema(summary="Delete an allocation", description="Refused (409) while a configuration uses it.",
                          responses={204: None, **problems(404, 409)}),
)
class AllocationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    serializer_class = s.AllocationSerializer
    filterset_class = filters.AllocationFilter
    lookup_url_kwarg = "allocation_id"
    noun = "allocation"

    def get_queryset(self):
        return (
            Allocation.objects.select_related("current_version")
            .prefetch_related(_lines_prefetch("current_version__lines"), "alerts")
            .order_by("-created_at", "-id")
        )

    def _respond(self, allocation, status_code=status.HTTP_200_OK):
        allocation = self.get_queryset().get(pk=allocation.pk)
        return Response(s.AllocationSerializer(allocation).data, status=status_code)

    def create(self, request):
        data = s.AllocationInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        allocation = services.allocation_create(data=_allocation_input(data.validated_data), user=request.user)
        return self._respond(allocation, status.HTTP_201_CREATED)

    def update(self, request, allocation_id=None):
        allocation = self.get_object()
        data = s.AllocationInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        allocation = services.allocation_update(
            allocation=allocation, data=_allocation_input(data.validated_data), user=request.user
        )
        return self._respond(allocation)

    def destroy(self, request, allocation_id=None):
        services.allocation_delete(allocation=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        methods=["GET"], summary="Get an allocation's strategy",
        responses={200: OpenApiResponse(s.STRATEGY_SCHEMA, description="The strategy, or null."), **problems(404)},
    )
    @extend_schema(
        methods=["POST", "PATCH"], summary="Set or remove an allocation's strategy",
        description="The body is the complete strategy object of configurations (docs/automation.md), or null to "
        "remove it. It applies to every account following the allocation that has no strategy of its own.",
        request={"application/json": s.STRATEGY_SCHEMA},
        responses={200: OpenApiResponse(s.STRATEGY_SCHEMA, description="The strategy, or null."),
                   **problems(400, 404, 409)},
    )
    @action(detail=True, methods=["get", "post", "patch"], url_path="strategy")
    def strategy(self, request, allocation_id=None):
        allocation = self.get_object()
        if request.method == "GET":
            strategy = Strategy.objects.filter(allocation=allocation).first()
        else:
            data = s.AllocationStrategyInputSerializer(data={"strategy": request.data})
            data.is_valid(raise_exception=True)
            strategy = strategies.allocation_strategy_set(allocation=allocation, data=data.validated_data["strategy"])
        body = s.strategy_representation(strategy)
        if body is None:  # DRF renders None as an empty body: the API's answer is JSON null
            return HttpResponse(b"null", content_type="application/json")
        return Response(body)


@extend_schema(
    summary="List an allocation's versions, newest first",
    parameters=[OpenApiParameter("allocation_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
    responses={200: s.AllocationVersionSerializer(many=True), **problems(400, 404)},
)
class AllocationVersionListView(IdempotentMixin, ListAPIView):
    serializer_class = s.AllocationVersionSerializer
    filter_backends = []

    def get_queryset(self):
        allocation_id = parse_uuid(self.kwargs["allocation_id"])
        if allocation_id is None:
            return AllocationVersion.objects.none()
        return (
            AllocationVersion.objects.filter(allocation_id=allocation_id)
            .select_related("created_by")
            .prefetch_related(_lines_prefetch("lines"))
            .order_by("-version")
        )

    def list(self, request, allocation_id=None):
        if parse_uuid(allocation_id) is None or not Allocation.objects.filter(pk=allocation_id).exists():
            raise NotFound(f"no allocation with id {allocation_id}")
        return super().list(request)


# --- Accounts and holdings -----------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List accounts", responses={200: s.AccountSerializer(many=True), **problems(400)}),
    create=extend_schema(summary="Create an account", request=s.AccountCreateSerializer,
                         responses={201: s.AccountSerializer, **problems(400, 409)}),
    retrieve=extend_schema(summary="Get an account", responses={200: s.AccountSerializer, **problems(404)}),
    partial_update=extend_schema(
        summary="Change an account's status, lock or parent", request=s.AccountUpdateSerializer,
        responses={200: s.AccountSerializer, **problems(400, 404, 422)},
    ),
)
class AccountViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = (
        PortfolioAccount.objects.select_related("configuration").prefetch_related("restriction_assignments")
        .order_by("-created_at", "-id")
    )
    serializer_class = s.AccountSerializer
    filterset_class = filters.AccountFilter
    lookup_url_kwarg = "account_id"
    noun = "account"

    def _respond(self, account, status_code=status.HTTP_200_OK):
        account = self.get_queryset().get(pk=account.pk)
        return Response(s.AccountSerializer(account).data, status=status_code)

    def create(self, request):
        data = s.AccountCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        account = services.account_create(parent=fields.pop("parent_id"), **fields)
        return self._respond(account, status.HTTP_201_CREATED)

    def partial_update(self, request, account_id=None):
        account = self.get_object()
        data = s.AccountUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = data.validated_data
        with transaction.atomic():  # both changes or neither
            if changes.keys() - {"restriction_list_ids"} or "restriction_list_ids" not in changes:
                account = services.account_update(
                    account=account,
                    status=changes.get("status"),
                    locked=changes.get("locked"),
                    parent=changes.get("parent_id"),
                    set_parent="parent_id" in changes,
                )
            if "restriction_list_ids" in changes:
                services.account_restriction_lists_set(
                    account=account, list_ids=changes["restriction_list_ids"], user=request.user
                )
        return self._respond(account)


HOLDINGS_PERMISSIONS = {
    "GET": ["portfolios.view_portfolioaccount", "portfolios.view_position", "portfolios.view_cashaccount"],
    "PUT": [
        f"portfolios.{action}_{model}"
        for model in ("position", "cashaccount")
        for action in ("add", "change", "delete")
    ],
}


ACCOUNT_ID_PARAMETER = OpenApiParameter("account_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class AccountHoldingsView(ApiView):
    queryset = PortfolioAccount.objects.all()
    lookup_url_kwarg = "account_id"
    noun = "account"
    required_permissions = HOLDINGS_PERMISSIONS
    serializer_class = s.HoldingsValuationSerializer

    @extend_schema(
        summary="Holdings valued at the latest prices",
        description="Positions (with those of sub-portfolios) and cash, valued in the account's base currency at "
        "the latest prices and FX rates at or before `as_of`. A missing price or rate is a 422, never a zero.",
        parameters=[ACCOUNT_ID_PARAMETER, s.HoldingsQuerySerializer],
        responses={200: s.HoldingsValuationSerializer, **problems(400, 404, 422)},
    )
    def get(self, request, account_id=None):
        account = self.get_object()
        query = s.HoldingsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        on_date = query.validated_data.get("as_of") or timezone.localdate()
        valuation = account_valuations(accounts=[account], on_date=on_date)[account.pk]
        if valuation.error:
            raise BusinessRuleViolation(f"cannot value account {account.pk}: {valuation.error}")
        context = {}
        if query.validated_data["lots"]:
            lots = defaultdict(list)
            for lot in account_lots(account=account, on_date=on_date, with_sub_accounts=True):
                lots[(lot.account_id, lot.instrument_id)].append(lot)
            context["lots"] = lots
        return Response(s.HoldingsValuationSerializer(valuation, context=context).data)

    @extend_schema(
        summary="Replace the holdings with the custodian's full snapshot",
        description="All positions and cash accounts are replaced at once; a bad row changes nothing.",
        parameters=[ACCOUNT_ID_PARAMETER],
        request=s.HoldingsInputSerializer,
        responses={200: s.HoldingsSerializer, **problems(400, 404)},
    )
    def put(self, request, account_id=None):
        account = self.get_object()
        data = s.HoldingsInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.holdings_replace(
            account=account,
            positions=[
                services.PositionInput(
                    row["instrument_id"], row["units"],
                    [services.LotInput(**lot) for lot in row["lots"]] if "lots" in row else None,
                )
                for row in data.validated_data["positions"]
            ],
            cash=[services.CashInput(**row) for row in data.validated_data["cash"]],
        )
        account = (
            PortfolioAccount.objects.prefetch_related(
                Prefetch("positions", queryset=Position.objects.select_related("instrument")), "cash_accounts"
            ).get(pk=account.pk)
        )
        return Response(s.HoldingsSerializer(account).data)


PAGE_PARAMETERS = [
    OpenApiParameter("limit", {"type": "integer", "minimum": 1},
                     description="Rows per page, 1..1000 (default 100; more is lowered)."),
    OpenApiParameter("offset", {"type": "integer", "minimum": 0}, description="Rows to skip (≥ 0)."),
]


class AccountHoldingsPageView(ApiView):
    """A paginated read of one account's holdings records (lots, realized gains): the
    account by its id, the holdings' view permissions."""

    queryset = PortfolioAccount.objects.all()
    lookup_url_kwarg = "account_id"
    noun = "account"
    required_permissions = {"GET": HOLDINGS_PERMISSIONS["GET"]}
    pagination_class = MetaDataPagination


class AccountLotsView(AccountHoldingsPageView):
    serializer_class = s.LotSerializer

    @extend_schema(
        summary="The account's tax lots with their unrealized gain",
        description="Oldest first per instrument; `unrealized_gain` is in the cost currency at the latest stored "
        "price, null for a lot of unknown cost or an instrument without a price (§12).",
        parameters=[ACCOUNT_ID_PARAMETER, s.LotQuerySerializer, *PAGE_PARAMETERS],
        responses={200: s.LotSerializer(many=True), **problems(400, 404)},
    )
    def get(self, request, account_id=None):
        account = self.get_object()
        query = s.LotQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        instrument_id = _instrument_filter(query.validated_data.get("instrument_id"))
        rows = account_lots(account=account, on_date=timezone.localdate(), instrument_id=instrument_id)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(s.LotSerializer(page, many=True).data)


class AccountRealizedGainsView(AccountHoldingsPageView):
    serializer_class = s.RealizedGainSerializer

    @extend_schema(
        summary="Realized gains, with totals by term in the base currency",
        description="One row per lot relieved by a settled sell or a holdings snapshot (§12), oldest first. "
        "`totals` cover every row matching the query (all pages): net short-term and long-term gains in the "
        "base currency; units of unknown cost are counted apart and in no total.",
        parameters=[ACCOUNT_ID_PARAMETER, s.RealizedGainQuerySerializer, *PAGE_PARAMETERS],
        responses={200: s.RealizedGainsPageSerializer, **problems(400, 404)},
    )
    def get(self, request, account_id=None):
        account = self.get_object()
        query = s.RealizedGainQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = realized_gains(
            account=account, year=query.validated_data.get("year"),
            instrument_id=_instrument_filter(query.validated_data.get("instrument_id")),
        )
        page = self.paginate_queryset(rows)
        response = self.get_paginated_response(s.RealizedGainSerializer(page, many=True).data)
        response.data["totals"] = s.RealizedTotalsSerializer(realized_totals(rows)).data
        return response


def _instrument_filter(reference):
    """The instrument a `?instrument_id=` (ISIN or UUID) names; 400 naming the field when none."""
    if reference is None:
        return None
    instrument = instruments_by_reference([reference]).get(reference)
    if instrument is None:
        raise InvalidInput([FieldError("instrument_id", f"no instrument with ISIN or UUID {reference}")])
    return instrument.pk


# --- Configurations --------------------------------------------------------------------

@extend_schema_view(
    list=extend_schema(summary="List configurations",
                       responses={200: s.ConfigurationSerializer(many=True), **problems(400)}),
    create=extend_schema(
        summary="Make an account follow an allocation",
        description="Only PORTFOLIO accounts (422 otherwise); one configuration per account (409).",
        request=s.ConfigurationCreateSerializer,
        responses={201: s.ConfigurationSerializer, **problems(400, 409, 422)},
    ),
    retrieve=extend_schema(summary="Get an account's configuration",
                           responses={200: s.ConfigurationSerializer, **problems(404)}),
    partial_update=extend_schema(
        summary="Change the allocation an account follows, or its strategy",
        description="Changes the target only; nothing trades until a rebalance runs. `strategy` is the "
        "complete new strategy, or null to remove it.",
        request=s.ConfigurationUpdateSerializer,
        responses={200: s.ConfigurationSerializer, **problems(400, 404, 409)},
    ),
)
class ConfigurationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = Configuration.objects.select_related("strategy").order_by("-created_at", "-account_id")
    serializer_class = s.ConfigurationSerializer
    filterset_class = filters.ConfigurationFilter
    lookup_url_kwarg = "account_id"
    noun = "configuration for account"

    def create(self, request):
        data = s.ConfigurationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        configuration = strategies.configuration_create_with_strategy(
            account=data.validated_data["account_id"],
            allocation=data.validated_data["allocation_id"],
            strategy=data.validated_data["strategy"],
        )
        configuration = self.get_queryset().get(pk=configuration.pk)
        return Response(s.ConfigurationSerializer(configuration).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, account_id=None):
        configuration = self.get_object()
        data = s.ConfigurationUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        configuration = strategies.configuration_update_with_strategy(
            configuration=configuration, allocation=data.validated_data.get("allocation_id"),
            strategy=data.validated_data.get("strategy", strategies.KEEP),
        )
        configuration = self.get_queryset().get(pk=configuration.pk)
        return Response(s.ConfigurationSerializer(configuration).data)
