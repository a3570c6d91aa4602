"""The client's address behind reverse proxies we trust (`DJANGO_TRUSTED_PROXIES`).

django-axes (lockouts per username and address), the token endpoint's limiter and
the audit trail read `REMOTE_ADDR`. Behind a proxy that is the proxy's address, so
this middleware, run before them, replaces it with the client's: the right-most
address of `X-Forwarded-For` that is not one of the trusted proxies. Only when the
connection itself comes from a trusted proxy: a client talking to us directly cannot
choose its address by sending the header, and the addresses a client prepends to the
header are never reached (we walk from the right, through trusted proxies only).

`DJANGO_TRUSTED_PROXIES` lists addresses or networks: `10.0.0.5,10.1.0.0/16`. Empty
(the default): `REMOTE_ADDR` is used as it is.
"""

import ipaddress
import logging

from django.conf import settings

logger = logging.getLogger(__name__)


def _networks(values) -> tuple:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"DJANGO_TRUSTED_PROXIES: {value!r} is not an address or network ({exc})") from exc
    return tuple(networks)


def _parse(address: str):
    try:
        return ipaddress.ip_address(address.strip())
    except ValueError:
        return None


def client_address(remote_addr: str, forwarded_for: str, trusted: tuple) -> str:
    """The client's address given the connection's and the X-Forwarded-For header."""

    def is_trusted(address) -> bool:
        return address is not None and any(address in network for network in trusted)

    if not trusted or not forwarded_for or not is_trusted(_parse(remote_addr)):
        return remote_addr
    for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
        address = _parse(hop)
        if address is None:
            return remote_addr  # a malformed hop: believe nothing further left
        if not is_trusted(address):
            return str(address)
    return remote_addr


class TrustedProxyMiddleware:
    """Set `REMOTE_ADDR` to the client's address when the request came through trusted proxies."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.trusted = _networks(settings.TRUSTED_PROXIES)

    def __call__(self, request):
        if self.trusted:
            meta = request.META
            meta["REMOTE_ADDR"] = client_address(
                meta.get("REMOTE_ADDR", ""), meta.get("HTTP_X_FORWARDED_FOR", ""), self.trusted
            )
        return self.get_response(request)
