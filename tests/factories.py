"""factory_boy factories. Allocations go through the service, so their rules hold."""

import itertools
from datetime import date
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from stdnum import isin as stdnum_isin

from portfolios import models, services

_isin_counter = itertools.count(1)


def make_isin(country: str = "DE") -> str:
    body = f"{country}{next(_isin_counter):09d}"
    body = body[:11].ljust(11, "0")
    return body + stdnum_isin.calc_check_digit(body)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-Secret-123")


class InstrumentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Instrument

    isin = factory.LazyFunction(make_isin)
    name = factory.Sequence(lambda n: f"Instrument {n}")
    type = models.InstrumentType.ETF
    currency = "EUR"
    tradable = True
    block_size = Decimal("1")


class CashInstrumentFactory(InstrumentFactory):
    isin = None
    type = models.InstrumentType.CASH
    name = factory.LazyAttribute(lambda o: o.currency)
    block_size = Decimal("0.01")

    class Meta:
        model = models.Instrument
        django_get_or_create = ("type", "currency")


class PriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Price

    instrument = factory.SubFactory(InstrumentFactory)
    source = "default"
    effective_at = factory.LazyFunction(lambda: date(2026, 3, 2))
    value = Decimal("100")


class FxRateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.FxRate

    base = "EUR"
    quote = "USD"
    effective_at = factory.LazyFunction(lambda: date(2026, 3, 2))
    rate = Decimal("1.10")


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.PortfolioAccount

    client_id = factory.Sequence(lambda n: f"CL-{n:06d}")
    account_type = models.AccountType.PORTFOLIO
    base_currency = "EUR"
    status = models.AccountStatus.ACTIVE
    locked = False


class PositionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Position
        skip_postgeneration_save = True

    account = factory.SubFactory(AccountFactory)
    instrument = factory.SubFactory(InstrumentFactory)
    units = Decimal("10")

    @factory.post_generation
    def lots(self, create, extracted, **kwargs):
        """Units = Σ lot units (§12): one lot of unknown cost unless `lots=[(acquired_on,
        units, unit_cost), ...]` is given."""
        if not create or not self.units:
            return
        for acquired_on, units, cost in extracted or [(date(2020, 1, 2), self.units, None)]:
            models.Lot.objects.create(
                position=self, acquired_on=acquired_on, units=units, unit_cost=cost,
                cost_currency=self.instrument.currency,
            )


class CashAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.CashAccount

    account = factory.SubFactory(AccountFactory)
    currency = "EUR"
    kind = models.CashKind.CASH
    balance = Decimal("1000")
    is_default = True


def make_allocation(weights: dict | None = None, user=None, **fields) -> models.Allocation:
    """An allocation through the service. `weights` maps instruments to weights;
    by default two fresh ETFs at 0.6 / 0.4, each with a price (an allocation of
    instruments without one needs attention: docs/restrictions.md)."""
    if weights is None:
        weights = {PriceFactory().instrument: Decimal("0.6"), PriceFactory().instrument: Decimal("0.4")}
    lines = [services.LineInput(instrument_id=str(i.id), weight=Decimal(w)) for i, w in weights.items()]
    return services.allocation_create(data=services.AllocationInput(lines=lines, **fields), user=user)


def make_configuration(account=None, allocation=None) -> models.Configuration:
    return models.Configuration.objects.create(
        account=account or AccountFactory(), allocation=allocation or make_allocation()
    )


def api_token_key(user, name: str = "test") -> str:
    """A new API token for `user`; its key, for `Authorization: Token <key>`."""
    from credentials.services import api_token_create

    return api_token_create(user=user, name=name)[1]
