"""Savings plans: their dates, the daily run (one BUY portfolio order per due date,
claimed once) and create / change / delete."""

from __future__ import annotations

import logging
from calendar import monthrange
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from audit.services import audit_records
from core.errors import BusinessRuleViolation, DomainError, FieldError, InvalidInput, raise_if_errors
from portfolios.models import AccountStatus, AccountType, CashAccount, PortfolioAccount
from portfolios.models.fields import MONEY, is_currency_code

from ...models import ClaimOutcome, Initiation, SavingsInterval, SavingsPlan, SavingsPlanRun, Side
from ..orders import portfolio_order_create
from .common import claim_rows, evaluation_date, utc_date

logger = logging.getLogger(__name__)


# --- Savings plans: dates ----------------------------------------------------------------

_STEP_MONTHS = {SavingsInterval.MONTHLY: 1, SavingsInterval.QUARTERLY: 3}


def _month_date(month_index: int, day: int) -> date:
    year, month = divmod(month_index, 12)
    month += 1
    return date(year, month, min(day, monthrange(year, month)[1]))


def _first_month(plan) -> int:
    """The month (year·12 + month − 1) of the plan's first date: the first `day` (clamped)
    on or after its start date."""
    index = plan.start_date.year * 12 + plan.start_date.month - 1
    return index if _month_date(index, plan.day) >= plan.start_date else index + 1


def _first_weekly(plan) -> date:
    return plan.start_date + timedelta(days=(plan.day - plan.start_date.isoweekday()) % 7)


def savings_plan_date_on_or_before(plan, day: date) -> date | None:
    """The latest date of the plan at or before `day` (its end date ignored), or None.

    WEEKLY: every `day`-th weekday (1 = Monday) from the start date on. MONTHLY and
    QUARTERLY: `day` of every (third) month, clamped to the month's end (31 → 28/29 Feb,
    30 Apr, 31 May ...), from the first such date on or after the start date; each date
    is computed from `day`, never from the previous date, so month ends do not creep.
    """
    if plan.interval == SavingsInterval.WEEKLY:
        first = _first_weekly(plan)
        return None if day < first else first + timedelta(days=7 * ((day - first).days // 7))
    step = _STEP_MONTHS[plan.interval]
    first = _first_month(plan)
    k = (day.year * 12 + day.month - 1 - first) // step
    if k >= 0 and _month_date(first + k * step, plan.day) > day:
        k -= 1
    return _month_date(first + k * step, plan.day) if k >= 0 else None


def savings_plan_date_after(plan, day: date) -> date | None:
    """The first date of the plan strictly after `day`, or None past its end date."""
    if plan.interval == SavingsInterval.WEEKLY:
        first = _first_weekly(plan)
        found = first if day < first else first + timedelta(days=7 * ((day - first).days // 7 + 1))
    else:
        step = _STEP_MONTHS[plan.interval]
        first = _first_month(plan)
        k = (day.year * 12 + day.month - 1 - first) // step
        k = max(k, 0)
        found = _month_date(first + k * step, plan.day)
        while found <= day:
            k += 1
            found = _month_date(first + k * step, plan.day)
    if plan.end_date is not None and found > plan.end_date:
        return None
    return found


def savings_plan_next_run_date(plan, *, last_run: date | None = None, today: date | None = None) -> date | None:
    """The next date the plan will buy on: its first date on or after `today` (default:
    the UTC date) that is not claimed yet (`last_run`: its latest claimed date). None
    when the plan is paused or has ended."""
    today = today or evaluation_date()
    if not plan.active or (plan.end_date is not None and plan.end_date < today):
        return None
    after = today - timedelta(days=1)
    if last_run is not None and last_run > after:
        after = last_run
    return savings_plan_date_after(plan, after)


def with_last_run(queryset):
    """Annotate `last_run` (the latest claimed due date) on a SavingsPlan queryset, for
    `savings_plan_next_run_date` without a query per plan."""
    latest = SavingsPlanRun.objects.filter(savings_plan=OuterRef("pk")).order_by("-due_date").values("due_date")[:1]
    return queryset.annotate(last_run=Subquery(latest))


# --- Savings plans: the daily run --------------------------------------------------------


@dataclass(frozen=True)
class SavingsPlanSummary:
    on_date: date
    due: int  # plans with a due date not claimed yet
    executed: int  # portfolio orders created
    failed: int  # claims recorded FAILED (the reason is on the claim)
    already_claimed: int  # claimed by a concurrent run meanwhile

    def __str__(self):
        return (
            f"savings plans of {self.on_date}: {self.due} due, {self.executed} portfolio order(s), "
            f"{self.failed} failed"
        )


def savings_plans_run(*, on_date: date | None = None, now: datetime | None = None) -> SavingsPlanSummary:
    """Place the BUY portfolio order of every active savings plan due on `on_date`
    (default: the UTC date of `now`, default the current time).

    Due: the plan's latest date in (day before it was created or last changed,
    on_date], not claimed yet; so a date missed while the system was down is caught
    up once. A plan past its end date, or paused, does nothing. Each plan is handled
    in a transaction of its own: claim (plan, due date) first, then
    `portfolio_order_create`; a refusal (account not ACTIVE, not configured, not enough
    cash ...) is recorded as FAILED with its reason, and the plan goes on next period.
    """
    now = now or timezone.now()
    today = on_date or evaluation_date(now)
    plans = (
        SavingsPlan.objects.filter(active=True, start_date__lte=today)
        .filter(Q(end_date__isnull=True) | Q(end_date__gte=today))
        .select_related("account")
        .order_by("start_date", "id")
    )
    due = []
    for plan in plans:
        due_date = savings_plan_date_on_or_before(plan, today)
        if due_date is not None and due_date > utc_date(plan.updated_at) - timedelta(days=1):
            due.append((plan, due_date))
    claimed = set(
        SavingsPlanRun.objects.filter(due_date__in={d for _, d in due}).values_list("savings_plan_id", "due_date")
    )
    due = [(plan, due_date) for plan, due_date in due if (plan.pk, due_date) not in claimed]
    outcomes = [savings_plan_execute(plan=plan, due_date=due_date, now=now) for plan, due_date in due]
    summary = SavingsPlanSummary(
        on_date=today, due=len(due), executed=outcomes.count(ClaimOutcome.EXECUTED),
        failed=outcomes.count(ClaimOutcome.FAILED), already_claimed=outcomes.count(None),
    )
    logger.info("%s", summary)
    return summary


@transaction.atomic
def savings_plan_execute(*, plan: SavingsPlan, due_date: date, now: datetime | None = None) -> str | None:
    """Claim (plan, due date) and place its portfolio order; return the outcome, or
    None when the date was already claimed (nothing done)."""
    now = now or timezone.now()
    if not claim_rows(SavingsPlanRun, "savings_plan", [(plan.pk, due_date)], now):
        return None
    run = SavingsPlanRun.objects.get(savings_plan=plan, due_date=due_date)
    try:
        with transaction.atomic():
            order = portfolio_order_create(
                account=plan.account, side=Side.BUY, cash_amount=plan.cash_amount, currency=plan.currency,
                initiation=Initiation.SAVINGS_PLAN,
            )
    except DomainError as exc:
        run.outcome, run.detail = ClaimOutcome.FAILED, exc.detail
    except Exception as exc:  # a bug for one plan must not stop the others; the date stays claimed
        logger.exception("savings plan %s, %s: the portfolio order failed", plan.pk, due_date)
        run.outcome, run.detail = ClaimOutcome.FAILED, f"internal error: {exc!r}"
    else:
        run.outcome, run.portfolio_order = ClaimOutcome.EXECUTED, order
    run.save(update_fields=["outcome", "detail", "portfolio_order"])
    return run.outcome


# --- Savings plans: create, change, delete -------------------------------------------------

MONEY_QUANTUM = Decimal(1).scaleb(-MONEY["decimal_places"])
MONEY_LIMIT = 10 ** (MONEY["max_digits"] - MONEY["decimal_places"])
SAVINGS_PLAN_FIELDS = ("cash_amount", "currency", "interval", "day", "start_date", "end_date", "active")


def _account_rules(account: PortfolioAccount) -> None:
    """422 for an account that can never take a savings plan's order. (Not ACTIVE or not
    configured yet is allowed: those are checked on each due date and recorded.)"""
    if account.account_type != AccountType.PORTFOLIO:
        raise BusinessRuleViolation(
            f"account {account.pk} is of type {account.account_type}; only PORTFOLIO accounts invest",
            [FieldError("account_id", "account_type must be PORTFOLIO")],
        )
    if account.parent_id is not None:
        raise BusinessRuleViolation(
            f"account {account.pk} is a sub-portfolio; give the plan to its parent {account.parent_id}",
            [FieldError("account_id", "must not be a sub-portfolio")],
        )
    if account.status == AccountStatus.CLOSED:
        raise BusinessRuleViolation(
            f"account {account.pk} is CLOSED", [FieldError("account_id", "a CLOSED account takes no savings plan")]
        )


def _plan_errors(account: PortfolioAccount, values: dict) -> list[FieldError]:
    errors = []
    amount = values.get("cash_amount")
    if amount is None:
        errors.append(FieldError("cash_amount", "is required"))
    elif isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        errors.append(FieldError("cash_amount", "must be a decimal number"))
    elif not Decimal(amount).is_finite() or amount <= 0:
        errors.append(FieldError("cash_amount", "must be greater than 0"))
    elif amount >= MONEY_LIMIT or Decimal(amount).quantize(MONEY_QUANTUM) != amount:
        errors.append(FieldError("cash_amount", f"less than {MONEY_LIMIT:,} with at most {MONEY['decimal_places']} "
                                                "decimal places"))
    currency = values.get("currency")
    if not currency or not is_currency_code(currency):
        errors.append(FieldError("currency", f"{currency} is not an ISO 4217 currency code"))
    else:
        held = {account.base_currency, *CashAccount.objects.filter(account=account).values_list("currency", flat=True)}
        if currency not in held:
            errors.append(FieldError(
                "currency", f"must be the account's base currency or one it holds cash in: {', '.join(sorted(held))}"
            ))
    interval = values.get("interval")
    if interval not in SavingsInterval.values:
        errors.append(FieldError("interval", f"must be one of {', '.join(SavingsInterval.values)}"))
    day = values.get("day")
    if isinstance(day, bool) or not isinstance(day, int):
        errors.append(FieldError("day", "is required: a whole number"))
    elif interval == SavingsInterval.WEEKLY and not 1 <= day <= 7:
        errors.append(FieldError("day", "must be a weekday from 1 (Monday) to 7 (Sunday) for a WEEKLY plan"))
    elif not 1 <= day <= 31:
        errors.append(FieldError("day", "must be a day of the month from 1 to 31 (clamped to the month's end)"))
    start, end = values.get("start_date"), values.get("end_date")
    if not isinstance(start, date):
        errors.append(FieldError("start_date", "is required: a date"))
    elif end is not None and end < start:
        errors.append(FieldError("end_date", "must not be before start_date"))
    if not isinstance(values.get("active"), bool):
        errors.append(FieldError("active", "must be true or false"))
    return errors


@transaction.atomic
def savings_plan_create(
    *, account: PortfolioAccount, cash_amount: Decimal, currency: str, day: int,
    interval: str = SavingsInterval.MONTHLY, start_date: date | None = None, end_date: date | None = None,
    active: bool = True,
) -> SavingsPlan:
    """A recurring BUY portfolio order for `account`. `start_date` defaults to today
    (UTC). Raises InvalidInput naming each bad field, BusinessRuleViolation (422) for an
    account that can never invest (not PORTFOLIO, a sub-portfolio, CLOSED)."""
    values = {
        "cash_amount": cash_amount, "currency": currency, "interval": interval, "day": day,
        "start_date": start_date or evaluation_date(), "end_date": end_date, "active": active,
    }
    raise_if_errors(_plan_errors(account, values))
    _account_rules(account)
    values["cash_amount"] = Decimal(values["cash_amount"])
    return SavingsPlan.objects.create(account=account, **values)


@transaction.atomic
def savings_plan_update(*, plan: SavingsPlan, **changes) -> SavingsPlan:
    """Change any of SAVINGS_PLAN_FIELDS; the account is fixed. The plan's dates count
    from the day of the change: a date missed before it is not caught up."""
    unknown = sorted(set(changes) - set(SAVINGS_PLAN_FIELDS))
    if unknown:
        raise InvalidInput([FieldError(name, "cannot be changed") for name in unknown])
    values = {name: getattr(plan, name) for name in SAVINGS_PLAN_FIELDS}
    values.update(changes)
    raise_if_errors(_plan_errors(plan.account, values))
    if any(getattr(plan, name) != value for name, value in values.items()):
        for name, value in values.items():
            setattr(plan, name, value)
        plan.save()
    return plan


@transaction.atomic
def savings_plan_delete(*, plan: SavingsPlan) -> None:
    """Remove the plan and its claims; portfolio orders it placed stay."""
    plan.delete()


@transaction.atomic
def savings_plans_pause(*, plan_ids: Iterable, active: bool = False) -> int:
    """Pause (active False) or resume plans; returns how many changed. Resuming catches
    up no date missed while paused. Each changed plan gets its audit entry."""
    # Locked rows and a conditional update: two concurrent pauses record each change once.
    changing = list(
        SavingsPlan.objects.select_for_update(of=("self",)).filter(pk__in=list(plan_ids)).exclude(active=active)
        .order_by("pk")
    )
    count = SavingsPlan.objects.filter(pk__in=[p.pk for p in changing]).exclude(active=active).update(
        active=active, updated_at=timezone.now()
    )
    audit_records(((plan, {"active": (not active, active)}) for plan in changing), "update")
    return count
