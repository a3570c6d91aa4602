"""Savings plans (api.md "Strategies, savings plans, webhooks"): serializers and thin views.

The rules live in `rebalancing.services.automation` (docs/automation.md). The list
runs a fixed number of queries whatever the page size: `next_run_date` is computed
from the plan and its latest claimed date, annotated on the queryset.
"""

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.response import Response

from config.api.exceptions import problems
from config.api.schema import states
from config.api.strict import UnknownFieldsRefused
from portfolios.api.fields import CurrencyCodeField, DecimalString, IsoDateField
from portfolios.api.filters import StrictBooleanFilter
from portfolios.api.serializers import StrictFieldsMixin
from portfolios.api.views import ApiViewSet
from portfolios.models import PortfolioAccount
from portfolios.models.fields import MONEY

from ..models import SavingsInterval, SavingsPlan
from ..services import automation

DAY_HELP = "WEEKLY: the weekday, 1 (Monday) to 7 (Sunday). MONTHLY, QUARTERLY: the day of the month, 1 to 31, " \
           "clamped to the month's end (31 → 28/29 February, 30 April)."


class SavingsPlanSerializer(serializers.Serializer):
    """A savings plan. Expects `last_run` annotated (automation.with_last_run)."""

    savings_plan_id = serializers.UUIDField(source="id")
    account_id = serializers.UUIDField()
    cash_amount = DecimalString(help_text="Invested on every due date, in `currency`.")
    currency = serializers.CharField()
    interval = serializers.ChoiceField(SavingsInterval.choices)
    day = serializers.IntegerField(help_text=DAY_HELP)
    start_date = serializers.DateField()
    end_date = serializers.DateField(allow_null=True, help_text="The last day a due date may fall on; null: no end.")
    active = serializers.BooleanField(help_text="False while paused: due dates are skipped, not caught up later.")
    next_run_date = serializers.SerializerMethodField(
        help_text="The next due date not yet run (UTC dates); null when paused or ended."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field(serializers.DateField(allow_null=True))
    def get_next_run_date(self, plan):
        found = automation.savings_plan_next_run_date(plan, last_run=getattr(plan, "last_run", None))
        return found.isoformat() if found else None


class SavingsPlanCreateSerializer(UnknownFieldsRefused, serializers.Serializer):
    account_id = serializers.PrimaryKeyRelatedField(
        queryset=PortfolioAccount.objects.all(),
        pk_field=serializers.UUIDField(),
        error_messages={"does_not_exist": "no account with id {pk_value}", "incorrect_type": "must be an account UUID"},
    )
    cash_amount = states(DecimalString(**MONEY, help_text="Greater than 0, in `currency`."), sign="positive")
    currency = CurrencyCodeField(help_text="The account's base currency or a currency it holds cash in.")
    interval = serializers.ChoiceField(SavingsInterval.choices, required=False, default=SavingsInterval.MONTHLY)
    day = states(serializers.IntegerField(help_text=DAY_HELP), minimum=1, maximum=31)
    start_date = IsoDateField(required=False, allow_null=True, default=None, help_text="Default: today (UTC).")
    end_date = IsoDateField(required=False, allow_null=True, default=None)
    active = serializers.BooleanField(required=False, default=True)


class SavingsPlanUpdateSerializer(StrictFieldsMixin, serializers.Serializer):
    cash_amount = states(DecimalString(**MONEY, required=False), sign="positive")
    currency = CurrencyCodeField(required=False)
    interval = serializers.ChoiceField(SavingsInterval.choices, required=False)
    day = states(serializers.IntegerField(required=False, help_text=DAY_HELP), minimum=1, maximum=31)
    start_date = IsoDateField(required=False)
    end_date = IsoDateField(required=False, allow_null=True)
    active = serializers.BooleanField(required=False, help_text="false pauses the plan, true resumes it.")


class SavingsPlanFilter(django_filters.FilterSet):
    account_id = django_filters.UUIDFilter()
    active = StrictBooleanFilter()
    interval = django_filters.ChoiceFilter(choices=SavingsInterval.choices)

    class Meta:
        model = SavingsPlan
        fields = ["account_id", "active", "interval"]


SAVINGS_PLAN_ID_PARAMETER = OpenApiParameter("savings_plan_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


def _plans():
    return automation.with_last_run(SavingsPlan.objects.order_by("-created_at", "-id"))


@extend_schema_view(
    list=extend_schema(summary="List savings plans", responses={200: SavingsPlanSerializer(many=True), **problems(400)}),
    retrieve=extend_schema(summary="Get a savings plan", parameters=[SAVINGS_PLAN_ID_PARAMETER],
                           responses={200: SavingsPlanSerializer, **problems(404)}),
    create=extend_schema(
        summary="Create a savings plan",
        description="A recurring BUY portfolio order, placed by the daily job on each due date (once, even if "
        "the job runs twice; a date missed while the system was down is caught up once). A refusal on the day "
        "(account not ACTIVE, not configured, not enough cash) is recorded on that date's run, visible in the "
        "admin, and the plan goes on next period. 422 when the account can never invest (not a PORTFOLIO "
        "account, a sub-portfolio, CLOSED).",
        request=SavingsPlanCreateSerializer,
        responses={201: SavingsPlanSerializer, **problems(400, 409, 422)},
    ),
    partial_update=extend_schema(
        summary="Change, pause or resume a savings plan",
        description="Any of the fields but account_id. Dates missed before the change are not caught up.",
        parameters=[SAVINGS_PLAN_ID_PARAMETER], request=SavingsPlanUpdateSerializer,
        responses={200: SavingsPlanSerializer, **problems(400, 404)},
    ),
    destroy=extend_schema(summary="Delete a savings plan", description="Portfolio orders it placed stay.",
                          parameters=[SAVINGS_PLAN_ID_PARAMETER], responses={204: None, **problems(404)}),
)
class SavingsPlanViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet
):  # view_ / add_ / change_ / delete_savingsplan
    queryset = _plans()
    serializer_class = SavingsPlanSerializer
    filterset_class = SavingsPlanFilter
    lookup_url_kwarg = "savings_plan_id"
    noun = "savings plan"

    def create(self, request):
        data = SavingsPlanCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        plan = automation.savings_plan_create(account=fields.pop("account_id"), **fields)
        return Response(SavingsPlanSerializer(_plans().get(pk=plan.pk)).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, savings_plan_id=None):
        plan = self.get_object()
        data = SavingsPlanUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        automation.savings_plan_update(plan=plan, **data.validated_data)
        return Response(SavingsPlanSerializer(_plans().get(pk=plan.pk)).data)

    def destroy(self, request, savings_plan_id=None):
        automation.savings_plan_delete(plan=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
