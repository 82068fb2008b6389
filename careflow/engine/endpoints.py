"""Where a Subscription's notifications may go: public addresses, and private ones only when allowed.

Any signed-in caller may create a Subscription, and its endpoint is a URL they choose, so without a
check the server would POST, from inside the region's network, to whatever they name: the
database host, a cloud metadata service, an admin port on this machine (server-side request
forgery; the delivery status even tells them whether something answered). So an endpoint's host
is resolved when a notification is sent, every address it resolves to must be public (or inside
``CAREFLOW_SUBSCRIPTION_PRIVATE_ENDPOINTS``: a comma-separated list of networks such as
``10.20.0.0/16`` or ``127.0.0.1/32`` for a relay the region runs), and the connection is made to
the address that was checked, so a second DNS answer cannot send it elsewhere.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

ENV_PRIVATE_ENDPOINTS = "CAREFLOW_SUBSCRIPTION_PRIVATE_ENDPOINTS"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class EndpointRefused(ValueError):
    """The endpoint may not be sent to; the message says why (no private data in it)."""


@lru_cache(maxsize=8)
def _allowed(setting: str) -> tuple[Network, ...]:
    out = []
    for part in setting.split(","):
        if part.strip():
            try:
                out.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise EndpointRefused(f"{ENV_PRIVATE_ENDPOINTS} holds {part.strip()!r}, not a network") from None
    return tuple(out)


def allowed_private_networks() -> tuple[Network, ...]:
    return _allowed(os.environ.get(ENV_PRIVATE_ENDPOINTS, ""))


def address_problem(address: Address, allowed: tuple[Network, ...]) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_global or any(address in net for net in allowed):
        return None
    return f"the endpoint's host is a private address ({ENV_PRIVATE_ENDPOINTS} does not allow it)"


def literal_problem(url: str) -> str | None:
    """Why an endpoint written as an IP address (or localhost) is refused now, before any DNS."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        host = "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: checked when it is resolved, at each delivery
    return address_problem(address, allowed_private_networks())


@dataclass(frozen=True)
class Target:
    """The checked address to connect to, and the name the server's certificate must carry."""

    url: str  # the endpoint with its host replaced by the checked address
    host_header: str  # the endpoint's own host[:port]
    server_name: str  # the name the TLS certificate is checked against


def resolve(url: str) -> Target:
    """The address to POST ``url`` to; EndpointRefused when any address of its host is private."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise EndpointRefused("the endpoint's host does not resolve") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    allowed = allowed_private_networks()
    for address in addresses:
        problem = address_problem(address, allowed)
        if problem:
            raise EndpointRefused(problem)
    chosen = addresses[0]
    literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    return Target(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), parts.netloc.rpartition("@")[2], host)
