"""Which addresses a webhook may reach: public ones, plus the configured allowed networks.

Loopback, private, link-local (cloud metadata lives at 169.254.169.254), multicast, reserved
and unspecified addresses are refused unless inside WEBHOOKS_ALLOWED_PRIVATE_NETS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA = (ipaddress.ip_network("fd00:ec2::254/128"), ipaddress.ip_network("100.100.100.200/32"))


class DestinationRefused(ValueError):
    """A webhook address that the destination guard does not allow."""


def refusal(address: str, allowed: Sequence[Network]) -> str | None:
    """Why `address` may not be reached, or None when it may."""
    ip: Address = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in allowed):
        return None
    if any(ip in net for net in _METADATA):
        return f"{ip} is a cloud metadata address"
    for kind in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{kind}"):
            return (
                f"{ip} is a {kind.replace('_', '-')} address "
                "(allow it with WEBHOOKS_ALLOWED_PRIVATE_NETS)"
            )
    return None


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
