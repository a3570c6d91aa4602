"""Rebalancing executions over the API: start, list, read with results, cancel.

    POST /api/v1/portfolios/rebalancings/executions/                 202 execution
    GET  /api/v1/portfolios/rebalancings/executions/?status=&trigger= list (without results)
    GET  /api/v1/portfolios/rebalancings/executions/{execution_id}/   execution with results
    POST /api/v1/portfolios/rebalancings/executions/{execution_id}/cancel/
    POST /api/v1/portfolios/rebalancings/executions/{execution_id}/approve/   {"comment"?}
    POST /api/v1/portfolios/rebalancings/executions/{execution_id}/reject/    {"comment"?}

Thin adapters over rebalancing.services.executions. Every read runs a fixed number
of queries whatever the page size or the size of the execution.
"""

from collections import defaultdict

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from config.api.exceptions import problems
from config.api.schema import states
from config.api.strict import UnknownFieldsRefused
from portfolios.api.fields import DecimalString, IsoDateField
from portfolios.api.views import ApiViewSet
from portfolios.models import PortfolioAccount

from .. import services
from ..services.tax import tax_order_rows
from .serializers import AdjustmentSerializer, EstimatedGainSerializer, OptionalDecimal, OrderLotSerializer
from ..services.approval import APPROVE_PERMISSION, execution_approve, execution_reject
from ..models import (
    Execution,
    ExecutionMethod,
    ExecutionResult,
    ExecutionStatus,
    Method,
    ResultStatus,
    Side,
    TradeOrder,
    TradeOrderStatus,
    Trigger,
)

DEFAULT_RESULTS_LIMIT = 100
MAX_RESULTS_LIMIT = 1000


# --- Input ---------------------------------------------------------------------------------


@extend_schema_field({"type": "array", "items": {"type": "string", "format": "uuid"}})
class AccountIdsField(serializers.Field):
    """A JSON list of account ids, checked for shape only (the service parses and looks
    them up): per-item serializer fields would cost seconds for 100,000 ids."""

    default_error_messages = {"not_a_list": "must be a list of account ids", "empty": "at least one account is required"}

    def to_internal_value(self, data):
        if not isinstance(data, list):
            self.fail("not_a_list")
        if not data:
            self.fail("empty")
        bad = {i: ["must be a string (an account UUID)"] for i, value in enumerate(data) if not isinstance(value, str)}
        if bad:
            raise ValidationError(bad)
        return data

    def to_representation(self, value):
        return value


class ExecutionCreateSerializer(UnknownFieldsRefused, serializers.Serializer):
    """Exactly one of `accounts`, `allocation_id` or `all_accounts: true` says which
    accounts run."""

    accounts = states(AccountIdsField(
        required=False,
        help_text=f"Account UUIDs, at most {services.MAX_EXECUTION_ACCOUNTS:,}, none twice.",
    ), minItems=1, maxItems=services.MAX_EXECUTION_ACCOUNTS, uniqueItems=True)
    allocation_id = serializers.UUIDField(
        required=False, help_text="Every ACTIVE top-level account whose configuration follows this allocation."
    )
    all_accounts = serializers.BooleanField(
        required=False, default=False,
        help_text="true: every ACTIVE top-level configured account (the whole book).",
    )
    method = serializers.ChoiceField(Method.choices, required=False, default=Method.FULL)
    rebalance_date = IsoDateField(
        required=False, allow_null=True, default=None, help_text="Prices and targets as of this date; default today."
    )
    instrument_ids = serializers.ListField(
        child=serializers.CharField(), required=False, allow_empty=False,
        help_text="ISINs or UUIDs: only lines of these instruments get orders; the other holdings keep their units "
        "and still count in the total and the weights (§10).",
    )

    def to_internal_value(self, data):
        if isinstance(data, dict) and "preferences" in data:
            raise ValidationError(
                {"preferences": ["executions use each account's effective preferences; overrides are for previews only"]}
            )
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise ValidationError({name: ["is not a field of an execution request"] for name in unknown})
        return super().to_internal_value(data)

    def validate(self, attrs):
        chosen = [name for name in ("accounts", "allocation_id") if name in attrs] + (
            ["all_accounts"] if attrs.get("all_accounts") else []
        )
        if len(chosen) != 1:
            message = (
                "give one of accounts, allocation_id or all_accounts: true" if not chosen
                else f"give only one of {', '.join(chosen)}"
            )
            raise ValidationError({"accounts": [message]})
        return attrs


class DecisionSerializer(UnknownFieldsRefused, serializers.Serializer):
    """The body of approve / reject."""

    comment = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=2000, trim_whitespace=True,
        help_text="Why, in a few words; kept on the execution.",
    )

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise ValidationError({name: ["is not a field of an approval decision"] for name in unknown})
        return super().to_internal_value(data)


# --- Output --------------------------------------------------------------------------------


class ApprovalSerializer(serializers.Serializer):
    """The four-eyes approval of an execution (null when no threshold applied to it)."""

    currency = serializers.CharField(source="approval_currency", help_text="Of the gross amounts.")
    gross_amount_limit = DecimalString(
        source="approval_gross_limit", allow_null=True, help_text="Above this, approval is needed; null: no limit."
    )
    order_count_limit = serializers.IntegerField(
        source="approval_order_limit", allow_null=True, help_text="Above this, approval is needed; null: no limit."
    )
    gross_amount = DecimalString(
        allow_null=True, help_text="Σ |trade amount| of the execution's orders; null until every chunk is done."
    )
    order_count = serializers.IntegerField(allow_null=True, help_text="Null until every chunk is done.")
    reason = serializers.CharField(source="approval_reason", allow_null=True, help_text="Why approval is needed.")
    decided_by = serializers.CharField(
        source="approved_by.username", allow_null=True, default=None, help_text="Who approved or rejected it."
    )
    decided_at = serializers.DateTimeField(source="approved_at", allow_null=True)
    comment = serializers.CharField(source="approval_comment", allow_null=True)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        for name in ("reason", "comment"):
            data[name] = data[name] or None
        return data


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField(help_text="Accounts with a result.")
    total = serializers.IntegerField(help_text="Accounts in the execution.")


class ExecutionOrderSerializer(serializers.Serializer):
    """A trade order the execution wrote; `status` is its status now."""

    order_id = serializers.UUIDField()
    account_id = serializers.UUIDField(help_text="The account trading: the result's account or one of its sub-portfolios.")
    instrument_id = serializers.UUIDField()
    isin = serializers.CharField(allow_null=True)
    side = serializers.ChoiceField(Side.choices)
    transaction_type = serializers.CharField()
    units = DecimalString()
    unit_price = DecimalString(help_text="In `currency`.")
    trade_amount = DecimalString(help_text="In `currency`.")
    currency = serializers.CharField(help_text="The instrument's currency; FX: the paying (SELL: receiving) currency.")
    execution_method = serializers.ChoiceField(ExecutionMethod.choices)
    status = serializers.ChoiceField(TradeOrderStatus.choices)
    cash_account_id = serializers.IntegerField(
        allow_null=True, help_text="The cash account paying for the order or receiving its proceeds (§10)."
    )
    counter_cash_account_id = serializers.IntegerField(
        allow_null=True, help_text="FX only: the cash account of the bought (SELL: sold) currency."
    )
    lots = OrderLotSerializer(
        many=True, required=False, help_text="Sells of a tax-aware account only: the lots the run named (§12)."
    )
    estimated_gain = OptionalDecimal(
        required=False, allow_null=True, help_text="Sells of a tax-aware account only: base currency (§12)."
    )


class ExecutionResultSerializer(serializers.Serializer):
    """One account's outcome. Amounts are in the account's base currency; null when the
    account could not be valued."""

    account_id = serializers.UUIDField()
    status = serializers.ChoiceField(ResultStatus.choices)
    error = serializers.CharField(allow_null=True, help_text="Why the account was skipped or failed; null otherwise.")
    total_value = DecimalString(allow_null=True)
    cash_before = DecimalString(allow_null=True)
    cash_after = DecimalString(allow_null=True, help_text="Once the orders have executed at the prices used.")
    orders = ExecutionOrderSerializer(many=True)
    adjustments = AdjustmentSerializer(many=True, help_text="What the account's restrictions changed (§11).")
    price_fallbacks = serializers.ListField(
        child=serializers.UUIDField(),
        help_text="With use_price_connector: the instruments valued at the latest stored price instead (§9).",
    )
    estimated_realized_gain = EstimatedGainSerializer(
        required=False, help_text="Tax-aware accounts only (§12): the gain the run's sells realize, by term."
    )


class ResultsPageSerializer(serializers.Serializer):
    offset = serializers.IntegerField()
    limit = serializers.IntegerField()
    count = serializers.IntegerField(help_text="Results in this page.")
    total_count = serializers.IntegerField(help_text="Results so far, on all pages.")


class ExecutionSerializer(serializers.Serializer):
    """An execution without its results (lists, and the answers of POST)."""

    execution_id = serializers.UUIDField(source="pk")
    status = serializers.ChoiceField(ExecutionStatus.choices)
    trigger = serializers.ChoiceField(Trigger.choices)
    method = serializers.ChoiceField(Method.choices)
    rebalance_date = serializers.DateField()
    allocation_id = serializers.UUIDField(
        allow_null=True, help_text="Set when the execution covers every account following this allocation."
    )
    accounts = serializers.IntegerField(
        source="total", help_text="How many accounts the execution covers (their ids are in `results`)."
    )
    progress = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    approval = serializers.SerializerMethodField()

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, execution) -> dict:
        return {"done": execution.done, "total": execution.total}

    @extend_schema_field(ApprovalSerializer(allow_null=True))
    def get_approval(self, execution) -> dict | None:
        return ApprovalSerializer(execution).data if execution.held else None


class ExecutionDetailSerializer(ExecutionSerializer):
    results = ExecutionResultSerializer(many=True, help_text="A page of the results, by account id.")
    results_meta = ResultsPageSerializer(help_text="Where this page of results lies (?results_offset=&results_limit=).")


# --- Reads --------------------------------------------------------------------------------


class ExecutionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ExecutionStatus.choices)
    trigger = django_filters.ChoiceFilter(choices=Trigger.choices)

    class Meta:
        model = Execution
        fields = ["status", "trigger"]


class ResultsQuerySerializer(serializers.Serializer):
    results_offset = serializers.IntegerField(required=False, default=0, min_value=0)
    results_limit = serializers.IntegerField(
        required=False, default=DEFAULT_RESULTS_LIMIT, min_value=1,
        help_text=f"Default {DEFAULT_RESULTS_LIMIT}; values above {MAX_RESULTS_LIMIT} are lowered to it.",
    )


def results_page(execution: Execution, *, offset: int, limit: int) -> tuple[list[dict], int]:
    """One page of an execution's results (by account id) with their orders; four
    queries whatever the page size: count, results, sub-accounts, orders."""
    rows = ExecutionResult.objects.filter(execution=execution)
    total_count = rows.count()
    page = list(
        rows.order_by("account_id").values_list(
            "account_id", "status", "error", "total_value", "cash_before", "cash_after", "order_count", "adjustments",
            "price_fallbacks", "estimated_realized_gain", "tax_orders",
        )[offset:offset + limit]
    )
    with_orders = [row[0] for row in page if row[6]]
    owner = {a: a for a in with_orders}
    if with_orders:
        # Sells may come from sub-portfolios: their orders belong to the parent's result.
        owner.update(PortfolioAccount.objects.filter(parent_id__in=with_orders).order_by().values_list("pk", "parent_id"))
    orders = defaultdict(list)
    if owner:
        for row in (
            TradeOrder.objects.filter(execution=execution, account_id__in=list(owner))
            .order_by("id")
            .values(
                "id", "account_id", "instrument_id", "instrument__isin", "side", "transaction_type", "units",
                "unit_price", "trade_amount", "currency", "execution_method", "status", "cash_account_id",
                "counter_cash_account_id",
            )
        ):
            row["order_id"] = row.pop("id")
            row["isin"] = row.pop("instrument__isin")
            orders[owner[row["account_id"]]].append(row)
    results = []
    for account_id, result_status, error, total_value, cash_before, cash_after, _, adjustments, fallbacks, gain, taxed in page:
        result = {
            "account_id": account_id, "status": result_status, "error": error or None, "total_value": total_value,
            "cash_before": cash_before, "cash_after": cash_after, "orders": orders.get(account_id, []),
            "adjustments": adjustments or [], "price_fallbacks": fallbacks or [],
        }
        if gain is not None:  # a tax-aware result (§12): its sells name their lots
            result["estimated_realized_gain"] = gain
            sells = tax_order_rows(taxed)
            for order in result["orders"]:
                sell = sells.get((str(order["account_id"]), str(order["instrument_id"]))) if order["side"] == "SELL" else None
                if sell is not None:
                    order["lots"], order["estimated_gain"] = sell["lots"], sell["estimated_gain"]
        results.append(result)
    return results, total_count


# --- Views --------------------------------------------------------------------------------

EXECUTION_ID_PARAMETER = OpenApiParameter("execution_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
CREATE_DESCRIPTION = f"""Rebalance accounts for real: the work runs on Celery workers, in chunks of accounts
(one transaction each), and this answers at once with the PENDING execution. Poll it with GET until
`status` is COMPLETED, PARTIALLY_FAILED or FAILED.

The accounts: `accounts` (at most {services.MAX_EXECUTION_ACCOUNTS:,} UUIDs), `allocation_id` (every ACTIVE
top-level account following that allocation) or `all_accounts: true` (every ACTIVE top-level configured
account). Each account runs with its own effective preferences. An account already in another unfinished
execution gets a FAILED result at once naming that execution. Every OPEN order of an account that gets a new
proposal (PROPOSED or NO_TRADES) is REPLACED; kept orders (ACCEPTED ... SETTLED_IN_MARKET) are netted (§4.6).
Needs the `rebalancing.execute_rebalance` permission."""


@extend_schema_view(
    list=extend_schema(
        summary="List executions",
        description="Newest first, without their results.",
        responses={200: ExecutionSerializer(many=True), **problems(400)},
    ),
    create=extend_schema(
        summary="Start an execution",
        description=CREATE_DESCRIPTION,
        request=ExecutionCreateSerializer,
        responses={202: ExecutionSerializer, **problems(400, 409)},
    ),
    retrieve=extend_schema(
        summary="Get an execution with its results",
        description=(
            "The execution and one page of its results, ordered by account id: `?results_offset=` (default 0) "
            f"and `?results_limit=` (default {DEFAULT_RESULTS_LIMIT}, at most {MAX_RESULTS_LIMIT}); `results_meta` "
            "says where the page lies. Each result lists the trade orders the execution wrote for the account "
            "and its sub-portfolios, with their current status."
        ),
        parameters=[EXECUTION_ID_PARAMETER, ResultsQuerySerializer],
        responses={200: ExecutionDetailSerializer, **problems(400, 404)},
    ),
    cancel=extend_schema(
        summary="Cancel an execution",
        description=(
            "PENDING, AWAITING_APPROVAL or RUNNING → CANCELLED. Chunks of accounts not yet started are not run "
            "(those accounts get no result and no orders); a chunk being processed finishes. 409 when the "
            "execution has already finished. Needs the `rebalancing.execute_rebalance` permission."
        ),
        parameters=[EXECUTION_ID_PARAMETER],
        request=None,
        responses={200: ExecutionSerializer, **problems(404, 409)},
    ),
    approve=extend_schema(
        summary="Approve an execution waiting for approval",
        description=(
            "AWAITING_APPROVAL → COMPLETED / PARTIALLY_FAILED / FAILED (as its results say): its PENDING_APPROVAL "
            "trade orders become OPEN and replace the accounts' OPEN orders, and its accounts are released. "
            f"Needs the `{APPROVE_PERMISSION}` permission, and another user than the one who requested the "
            "execution (403 for the requester, superusers included). 409 unless AWAITING_APPROVAL."
        ),
        parameters=[EXECUTION_ID_PARAMETER],
        request=DecisionSerializer,
        responses={200: ExecutionSerializer, **problems(400, 403, 404, 409)},
    ),
    reject=extend_schema(
        summary="Reject an execution waiting for approval",
        description=(
            "AWAITING_APPROVAL → REJECTED: its PENDING_APPROVAL trade orders become REJECTED, the accounts keep "
            f"their OPEN orders and are released. Needs the `{APPROVE_PERMISSION}` permission, and another user "
            "than the requester (403). 409 unless AWAITING_APPROVAL."
        ),
        parameters=[EXECUTION_ID_PARAMETER],
        request=DecisionSerializer,
        responses={200: ExecutionSerializer, **problems(400, 403, 404, 409)},
    ),
)
class ExecutionViewSet(mixins.ListModelMixin, ApiViewSet):
    queryset = Execution.objects.select_related("approved_by").order_by("-created_at", "-id")  # view_execution for reads
    serializer_class = ExecutionSerializer
    filterset_class = ExecutionFilter
    lookup_url_kwarg = "execution_id"
    noun = "execution"

    @property
    def required_permissions(self) -> dict:
        if getattr(self, "action", None) in ("approve", "reject"):
            return {"POST": [APPROVE_PERMISSION]}
        return {"POST": ["rebalancing.execute_rebalance"]}

    def create(self, request):
        data = ExecutionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        execution = services.execution_create(
            method=fields["method"],
            trigger=Trigger.API,
            user=request.user,
            account_ids=fields.get("accounts"),
            allocation=fields.get("allocation_id"),
            rebalance_date=fields["rebalance_date"],
            instrument_ids=fields.get("instrument_ids"),
        )
        return Response(ExecutionSerializer(execution).data, status=status.HTTP_202_ACCEPTED)

    def retrieve(self, request, execution_id=None):
        execution = self.get_object()
        query = ResultsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        offset = query.validated_data["results_offset"]
        limit = min(query.validated_data["results_limit"], MAX_RESULTS_LIMIT)
        results, total_count = results_page(execution, offset=offset, limit=limit)
        body = ExecutionSerializer(execution).data
        body["results"] = ExecutionResultSerializer(results, many=True).data
        body["results_meta"] = {"offset": offset, "limit": limit, "count": len(results), "total_count": total_count}
        return Response(body)

    @action(detail=True, methods=["post"])
    def cancel(self, request, execution_id=None):
        execution = services.execution_cancel(execution=self.get_object(), user=request.user)
        return Response(ExecutionSerializer(execution).data)

    def _decide(self, request, decide):
        execution = self.get_object()
        data = DecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        execution = decide(execution=execution, user=request.user, comment=data.validated_data["comment"])
        return Response(ExecutionSerializer(execution).data)

    @action(detail=True, methods=["post"])
    def approve(self, request, execution_id=None):
        return self._decide(request, execution_approve)

    @action(detail=True, methods=["post"])
    def reject(self, request, execution_id=None):
        return self._decide(request, execution_reject)


# Route table, included by rebalancing/api/urls.py.
execution_list = ExecutionViewSet.as_view({"get": "list", "post": "create"})
execution_detail = ExecutionViewSet.as_view({"get": "retrieve"})
execution_cancel = ExecutionViewSet.as_view({"post": "cancel"})
execution_approve_view = ExecutionViewSet.as_view({"post": "approve"})
execution_reject_view = ExecutionViewSet.as_view({"post": "reject"})

__all__ = [
    "ExecutionViewSet", "execution_approve_view", "execution_cancel", "execution_detail", "execution_list",
    "execution_reject_view",
]
