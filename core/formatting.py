"""Numbers as operations staff read them (docs/admin.md, "Numbers"): money in its
currency's minor unit with thousands separators, weights and drift as percentages with
two decimals, units to the instrument's precision, prices to their own. Exact: a
Decimal is quantized and formatted as a Decimal, never through float."""

from decimal import ROUND_HALF_EVEN, Decimal

# ISO 4217 minor units that are not 2 (the rest of the world's currencies have 2).
MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0, "RWF": 0,
    "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3, "CLF": 4, "UYW": 4,
}
DASH = "—"


def minor_unit(currency: str) -> int:
    return MINOR_UNITS.get((currency or "").upper(), 2)


def _grouped(value: Decimal, places: int) -> str:
    quantized = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return f"{quantized:,.{places}f}"


def money(value, currency: str = "", *, code: bool = True) -> str:
    """1234567.891 EUR → "1,234,567.89 EUR"; JPY to 0 decimals; None → "—"."""
    if value is None:
        return DASH
    text = _grouped(Decimal(value), minor_unit(currency))
    return f"{text} {currency}" if currency and code else text


def percent(value, places: int = 2, sign: bool = False) -> str:
    """0.1234 → "12.34 %" (weights and drift are stored as fractions of 1)."""
    if value is None:
        return DASH
    text = _grouped(Decimal(value) * 100, places)
    if sign and not text.startswith("-") and Decimal(value) != 0:
        text = "+" + text
    return f"{text} %"


def decimals_of(step) -> int:
    """The decimals of a block size: 1 → 0, 0.01 → 2, 0.00000001 → 8."""
    if step is None:
        return 0
    exponent = Decimal(step).normalize().as_tuple().exponent
    return max(0, -exponent)


def units(value, step=None) -> str:
    """Units to the instrument's precision (its block size), with thousands separators:
    12.500000 with block 0.01 → "12.50", 3 with block 1 → "3"; a finer value keeps its digits."""
    if value is None:
        return DASH
    value = Decimal(value)
    # Never fewer decimals than the value has: a fraction below the block is shown, not hidden.
    return _grouped(value, max(decimals_of(step), _own_places(value)))


def trimmed(value, places: int) -> Decimal | None:
    """The Decimal itself at `places` decimals, or at its own if it has more (for a form
    input: 300.0000000000 at 0 → 300, 2.5 at 0 → 2.5); exact, never rounded."""
    if value is None:
        return None
    value = Decimal(value)
    return value.quantize(Decimal(1).scaleb(-max(places, _own_places(value))))


def number(value, min_places: int = 0) -> str:
    """A Decimal to its own precision (trailing zeros trimmed, at least `min_places`),
    with thousands separators: 56179.6170333420 → "56,179.617033342"."""
    if value is None:
        return DASH
    value = Decimal(value)
    return _grouped(value, max(min_places, _own_places(value)))


def _own_places(value: Decimal) -> int:
    """Decimals of the value without trailing zeros: 2.500 → 1, 100 → 0."""
    return max(0, -value.normalize().as_tuple().exponent)


def price(value) -> str:
    """A price to its own precision, at least 2 decimals: 101.5 → "101.50"."""
    return number(value, min_places=2)


def short_ids(pks) -> dict:
    """pk → the shortest prefix (of its hex without dashes, at least 8, taken from the
    random end of time-ordered UUIDs) that tells the given rows apart."""
    texts = {pk: str(pk).replace("-", "") for pk in pks}
    for length in range(8, 33):
        shown = {pk: text[-length:] for pk, text in texts.items()}
        if len(set(shown.values())) == len(shown):
            return {pk: "…" + value for pk, value in shown.items()}
    return {pk: str(pk) for pk in pks}


def short_id(pk) -> str:
    """The last 8 hex digits of a UUID: they differ between rows even for UUIDs made in
    the same millisecond (the first ones are the time)."""
    if not pk:
        return DASH
    return "…" + str(pk).replace("-", "")[-8:]


def related(obj, name: str, text=str) -> str:
    """`text(obj.<name>)` when the related row is already loaded (select_related), else
    its short id: a __str__ never runs a query of its own (bulk audit entries use it)."""
    if obj._meta.get_field(name).is_cached(obj):
        value = getattr(obj, name)
        return text(value) if value is not None else DASH
    return short_id(getattr(obj, f"{name}_id"))
