"""The SSRF guard for webhook targets.

A webhook URL comes from configuration, but the host name it names resolves at send
time. Unless ``allow_private`` is set, every address a target resolves to must be
public: loopback, private (RFC 1918, ULA), link-local (cloud metadata at
169.254.169.254), carrier-grade NAT, multicast, reserved and unspecified addresses are
refused. The check runs inside the HTTP client's resolver, on the addresses it is
about to connect to, so a DNS answer that changes between a check and the connection
(rebinding) is caught too.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlparse

from mevwatch.monitor.errors import DeliveryError

_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def address_allowed(addr: str) -> bool:
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return False
    return not (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT)


def check_url(url: str, *, allow_private: bool, resolve: bool = False) -> None:
    """Raise DeliveryError for a URL mevwatch must not call. ``resolve``: also check its addresses now."""
    u = urlparse(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise DeliveryError(f"webhook URL must be http(s)://host/..., got {url!r}")
    if u.username or u.password:
        raise DeliveryError("webhook URL must not carry credentials; use the signing secret")
    if allow_private:
        return
    try:
        addrs = [ipaddress.ip_address(u.hostname).compressed]
    except ValueError:
        if not resolve:
            return
        try:
            addrs = sorted({str(ai[4][0]) for ai in socket.getaddrinfo(u.hostname, u.port or 443, proto=socket.IPPROTO_TCP)})
        except OSError as exc:
            raise DeliveryError(f"cannot resolve webhook host {u.hostname}: {exc}") from None
    bad = [a for a in addrs if not address_allowed(a)]
    if bad:
        raise DeliveryError(f"webhook target {u.hostname} resolves to non-public address {bad[0]}; "
                            "set webhook_delivery.allow_private: true to allow loopback and private targets")


def guarded_resolver(allow_private: bool):
    """An aiohttp resolver that refuses non-public addresses (unless allowed)."""
    from aiohttp.resolver import DefaultResolver

    class GuardedResolver(DefaultResolver):  # type: ignore[misc,valid-type]  # aiohttp picks DefaultResolver at run time
        async def resolve(self, host, port=0, family=socket.AF_INET):  # type: ignore[override]
            infos = await super().resolve(host, port, family)
            if not allow_private:
                bad = [i["host"] for i in infos if not address_allowed(i["host"])]
                if bad:
                    raise DeliveryError(f"webhook target {host} resolves to non-public address {bad[0]}")
            return infos

    return GuardedResolver()
