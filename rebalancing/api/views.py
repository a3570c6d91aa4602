"""Thin adapters: validate the shape with a serializer, call one service or selector, serialize."""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from config.api.exceptions import problems
from core.errors import BusinessRuleViolation
from portfolios.api.views import ApiView
from portfolios.models import Allocation, PortfolioAccount
from portfolios.selectors import MissingMarketData

from .. import services
from ..models import RebalancePreferences
from ..selectors.book import allocation_constituents
from ..services.preferences import approval_values
from . import serializers as s

ACCOUNT_ID_PARAMETER = OpenApiParameter("account_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
ALLOCATION_ID_PARAMETER = OpenApiParameter("allocation_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
PREFERENCES_PUT_DESCRIPTION = (
    "Any subset of the preference fields. {whose}; a field left out (or null) {inherits}. "
    "An unknown field is a 400 naming it."
)


def _global_answer() -> Response:
    values = {**services.global_preferences().values, **approval_values()}
    return Response(s.GlobalPreferencesSerializer({"values": values}).data)


class GlobalPreferencesView(ApiView):
    """The global default preferences: every account inherits them unless it overrides a field."""

    queryset = RebalancePreferences.objects.all()  # view_ / change_rebalancepreferences
    serializer_class = s.GlobalPreferencesSerializer

    def get_object(self):
        # The one global row (None before its first save), not named in the URL. DRF's
        # OPTIONS answer asks for it; the default lookup by URL kwarg was a 500.
        return self.get_queryset().filter(is_global=True).first()

    @extend_schema(
        summary="Get the global default preferences",
        description="Every field resolved: a field the global defaults leave empty shows the built-in default.",
        responses={200: s.GlobalPreferencesSerializer, **problems()},
    )
    def get(self, request):
        return _global_answer()

    @extend_schema(
        summary="Replace the global default preferences",
        description=PREFERENCES_PUT_DESCRIPTION.format(
            whose="The fields sent replace the global defaults", inherits="goes back to the built-in default"
        ) + " The approval thresholds of executions (`approval_gross_amount`, `approval_order_count`, "
        "`approval_currency`) are set here only: left out, they keep their value; null means no limit (EUR). "
        "Changing them needs the `rebalancing.approve_execution` permission (403 naming the field).",
        request=s.GlobalPreferencesInputSerializer,
        responses={200: s.GlobalPreferencesSerializer, **problems(400, 403)},
    )
    def put(self, request):
        data = s.GlobalPreferencesInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.preferences_replace(values=dict(data.validated_data), user=request.user)
        return _global_answer()


def _account_answer(account) -> Response:
    effective = services.account_preferences(account)
    return Response(
        s.AccountPreferencesSerializer(
            {
                "account_id": account.pk,
                "preferences": effective.values,
                "overridden": [name for name in services.PREFERENCE_FIELDS if name in effective.overridden],
            }
        ).data
    )


class AccountPreferencesView(ApiView):
    """An account's effective preferences, and the fields it overrides."""

    queryset = PortfolioAccount.objects.all()
    lookup_url_kwarg = "account_id"
    noun = "account"
    serializer_class = s.AccountPreferencesSerializer
    required_permissions = {
        "GET": ["portfolios.view_portfolioaccount", "rebalancing.view_rebalancepreferences"],
        "PUT": ["portfolios.view_portfolioaccount", "rebalancing.change_rebalancepreferences"],
    }

    @extend_schema(
        summary="Get an account's effective preferences",
        description="Each field as the engine uses it for this account (the account's override, else the global "
        "default, else the built-in default); `overridden` names the fields the account sets itself.",
        parameters=[ACCOUNT_ID_PARAMETER],
        responses={200: s.AccountPreferencesSerializer, **problems(404)},
    )
    def get(self, request, account_id=None):
        return _account_answer(self.get_object())

    @extend_schema(
        summary="Replace an account's preference overrides",
        description=PREFERENCES_PUT_DESCRIPTION.format(
            whose="The fields sent become the account's overrides, replacing the ones it had",
            inherits="inherits the global default; `{}` clears every override",
        ),
        parameters=[ACCOUNT_ID_PARAMETER],
        request=s.PreferencesInputSerializer,
        responses={200: s.AccountPreferencesSerializer, **problems(400, 404)},
    )
    def put(self, request, account_id=None):
        account = self.get_object()
        data = s.PreferencesInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.preferences_replace(values=dict(data.validated_data), account=account, user=request.user)
        return _account_answer(account)


class PreviewView(ApiView):
    """What a rebalance would propose; writes nothing, so viewing accounts is enough."""

    queryset = PortfolioAccount.objects.all()
    serializer_class = s.PreviewSerializer
    required_permissions = {"POST": ["portfolios.view_portfolioaccount"]}

    @extend_schema(
        summary="Preview a rebalance",
        description=(
            f"Propose the orders for up to {services.MAX_PREVIEW_ACCOUNTS} accounts without writing anything. "
            "Each account gets a result with its own status; an account that cannot be rebalanced (not ACTIVE, "
            "not configured, a missing price) is a FAILED result whose `error` says why, not a failed request. "
            "`preferences` override the effective preferences for this call only."
        ),
        request=s.PreviewInputSerializer,
        responses={200: s.PreviewSerializer, **problems(400, 409)},
    )
    def post(self, request):
        data = s.PreviewInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        preview = services.rebalance_preview(
            account_ids=data.validated_data["accounts"],
            method=data.validated_data["method"],
            rebalance_date=data.validated_data["rebalance_date"],
            preference_overrides=dict(data.validated_data["preferences"]),
            instrument_ids=data.validated_data.get("instrument_ids"),
        )
        results = s.RebalanceResultSerializer(
            preview.results, many=True, context={"instruments": preview.instruments, "preview": preview}
        )
        return Response({"results": results.data})


class ConstituentsView(ApiView):
    """An allocation's lines on a date with their floating weights (spec §2.1)."""

    queryset = Allocation.objects.all()  # view_allocation
    lookup_url_kwarg = "allocation_id"
    noun = "allocation"
    serializer_class = s.ConstituentsSerializer

    @extend_schema(
        summary="An allocation's weights and floating weights on a date",
        description="The version in effect on `effective_at` (default today), each line's weight and its weight "
        "drifted by prices since `reset_date`. A missing price is a 422 that names it.",
        parameters=[ALLOCATION_ID_PARAMETER, s.ConstituentsQuerySerializer],
        responses={200: s.ConstituentsSerializer, **problems(400, 404, 422)},
    )
    def get(self, request, allocation_id=None):
        allocation = self.get_object()
        query = s.ConstituentsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        on_date = query.validated_data.get("effective_at") or timezone.localdate()
        try:
            constituents = allocation_constituents(
                allocation=allocation, on_date=on_date,
                price_source=services.global_preferences().values["price_source"],
            )
        except MissingMarketData as exc:
            raise BusinessRuleViolation(f"cannot compute the floating weights of allocation {allocation.pk}: {exc}")
        return Response(s.ConstituentsSerializer(constituents).data)
