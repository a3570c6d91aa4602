"""The restrictions in effect for a set of accounts, as the engine takes them (§11)."""

from collections import defaultdict
from datetime import date

from django.db import connection
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

from core.ids import uuid_array

from portfolios.models import (
    AccountRestrictionList,
    RestrictionEntry,
    RestrictionRule,
    RestrictionScope,
    Substitute,
)
from rebalancing import engine


_RULES = {rule.value: rule for rule in engine.Rule}


def in_effect(on_date: date) -> Q:
    """Entries whose date range holds `on_date` (open ends count as always)."""
    return (Q(effective_from__isnull=True) | Q(effective_from__lte=on_date)) & (
        Q(effective_to__isnull=True) | Q(effective_to__gte=on_date)
    )


def _assignments(account_ids) -> list:
    """(account id, list id) of the accounts' assignments; the ids as one array on PostgreSQL."""
    queryset = AccountRestrictionList.objects.order_by()
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(AccountRestrictionList._meta.db_table)
        condition = RawSQL(f"{table}.account_id = ANY(%s::uuid[])", [uuid_array(account_ids)], output_field=BooleanField())
        queryset = queryset.filter(condition)
    else:
        queryset = queryset.filter(account_id__in=list(account_ids))
    return list(queryset.values_list("account_id", "restriction_list_id"))


def restrictions_load(*, account_ids, groups: dict, on_date: date) -> tuple[dict, set]:
    """Per account id in `groups` (root id → ids of its group): its engine.Restrictions,
    for the accounts any restriction applies to; and the substitute instrument ids the
    engine may need (their prices and instruments must be loaded too).

    The lists of a group are the FIRM lists plus the ACCOUNT lists assigned to the
    account or any of its sub-portfolios. Two queries when no account has a list of its
    own and no FIRM entry is in effect; at most four whatever the number of accounts.
    Accounts with the same lists share one Restrictions object (the engine caches by it).
    """
    firm = list(
        RestrictionEntry.objects.filter(in_effect(on_date), restriction_list__scope=RestrictionScope.FIRM)
        .order_by().values_list("restriction_list_id", "restriction_list__name", "instrument_id", "rule")
    )
    assigned = defaultdict(set)  # account id → list ids
    for account_id, list_id in _assignments(account_ids):
        assigned[account_id].add(list_id)
    own = set().union(*assigned.values()) if assigned else set()
    entries = defaultdict(list)  # list id → engine.Restriction
    for list_id, name, instrument_id, rule in firm:
        entries[list_id].append(engine.Restriction(instrument_id, _RULES[rule], name))
    firm_ids = frozenset(entries)
    if own:
        for list_id, name, instrument_id, rule in (
            RestrictionEntry.objects.filter(
                in_effect(on_date), restriction_list_id__in=own, restriction_list__scope=RestrictionScope.ACCOUNT
            )
            .order_by().values_list("restriction_list_id", "restriction_list__name", "instrument_id", "rule")
        ):
            entries[list_id].append(engine.Restriction(instrument_id, _RULES[rule], name))
    if not entries:
        return {}, set()
    blocked = {
        e.instrument_id for rows in entries.values() for e in rows if e.rule != RestrictionRule.NO_SELL
    }
    substitutes = defaultdict(list)
    if blocked:
        for instrument_id, substitute_id in (
            Substitute.objects.filter(instrument_id__in=blocked).order_by("instrument_id", "rank")
            .values_list("instrument_id", "substitute_id")
        ):
            substitutes[instrument_id].append(substitute_id)
    substitutes = dict(substitutes)
    shared = {}  # frozenset of list ids → engine.Restrictions

    def restrictions_of(list_ids: frozenset):
        found = shared.get(list_ids)
        if found is None:
            rows = [e for list_id in sorted(list_ids, key=str) for e in entries.get(list_id, ())]
            relevant = {e.instrument_id for e in rows}
            found = shared[list_ids] = engine.Restrictions(
                rows, {k: v for k, v in substitutes.items() if k in relevant}
            )
        return found

    result = {}
    for root, group in groups.items():
        list_ids = firm_ids
        for account_id in group:
            mine = assigned.get(account_id)
            if mine:
                list_ids = list_ids | {i for i in mine if i in entries}
        if list_ids:
            result[root] = restrictions_of(list_ids)
    return result, {s for rows in substitutes.values() for s in rows}


__all__ = ["in_effect", "restrictions_load"]
