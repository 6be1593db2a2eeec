"""Which destinations a webhook may reach: public ones, plus the configured allowed networks.

Loopback, private, link-local (cloud metadata lives at 169.254.169.254), multicast, reserved,
unspecified and other not globally reachable addresses are refused unless inside
WEBHOOKS_ALLOWED_PRIVATE_NETS. IPv6 addresses that carry an IPv4 address (IPv4-mapped,
NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by the IPv4 address too.

The decision is taken on the host exactly as the HTTP client connects to it (invariant 7):
the URL is parsed once, by yarl (aiohttp's URL type, which IDNA-normalises the host, so a
host written in full-width digits and ideographic dots becomes the ASCII IP address), and
its `raw_host` — what aiohttp hands to the resolver or, for an IP literal, straight to the
socket — is what is judged here.
Numeric hosts that are not a canonical dotted quad (`2130706433`, `0177.0.0.1`, `127.1`,
`0x7f.1`, `127.0.0.1.`) are refused outright: getaddrinfo and other resolvers read them as
addresses, so they are never "just names". DNS names pass here; the worker's resolver
applies `refusal` to every address a name resolves to.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from yarl import URL

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA = (
    ipaddress.ip_network("169.254.169.254/32"),
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("100.100.100.200/32"),
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
# Not globally reachable per the IANA registries, whatever this Python's tables say.
_NOT_GLOBAL = (ipaddress.ip_network("192.0.0.0/24"),)  # IETF protocol assignments
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix (RFC 6052)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible (RFC 4291)
_KINDS = (
    "unspecified",
    "loopback",
    "link_local",
    "multicast",
    "site_local",
    "private",
    "reserved",
)
_HINT = "(allow it with WEBHOOKS_ALLOWED_PRIVATE_NETS)"
_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")
_HEX_NUMBER = re.compile(r"0x[0-9a-f]*")


class DestinationRefused(ValueError):
    """A webhook destination that the guard does not allow (dead-lettered, never retried)."""


def refusal(address: str | Address, allowed: Sequence[Network]) -> str | None:
    """Why the IP address `address` may not be reached, or None when it may."""
    ip: Address = (
        address
        if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address)
        else ipaddress.ip_address(address)
    )
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return f"{ip} is a scoped IPv6 address (zone identifiers are not allowed)"
        if ip.ipv4_mapped is not None:  # the socket connects to the IPv4 address itself
            return refusal(ip.ipv4_mapped, allowed)
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            kind, inner = embedded
            reason = refusal(inner, allowed)
            if reason is not None:
                return f"{ip} is a {kind} address of {inner}: {reason}"
            if kind == "NAT64":  # a NAT64 address reaches exactly its IPv4 address
                return None
        elif ip in _IPV4_COMPATIBLE and int(ip) > 1:
            return f"{ip} is a deprecated IPv4-compatible address {_HINT}"
    return _special(ip)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if ip in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    return None


def _special(ip: Address) -> str | None:
    if any(ip.version == net.version and ip in net for net in _METADATA):
        return f"{ip} is a cloud metadata address"
    for kind in _KINDS:
        if getattr(ip, f"is_{kind}", False):
            return f"{ip} is a {kind.replace('_', '-')} address {_HINT}"
    if ip.version == 4 and ip in _SHARED:
        return f"{ip} is a shared (carrier-grade NAT) address {_HINT}"
    if not ip.is_global or any(ip.version == net.version and ip in net for net in _NOT_GLOBAL):
        return f"{ip} is not a globally reachable address {_HINT}"
    return None


def host_address(host: str) -> Address | None:
    """The IP address the URL host `host` (yarl's `raw_host`) stands for, or None for a DNS
    name (to be resolved, and its addresses guarded, when connecting).

    Raises DestinationRefused for hosts that are neither a canonical IP literal nor a DNS
    name: numeric forms other than the dotted quad, IPv6 zone identifiers, and characters
    no DNS name has.
    """
    if not host:
        raise DestinationRefused("the URL has no host")
    if ":" in host:  # only an IPv6 literal has colons in yarl's raw_host
        if "%" in host:
            raise DestinationRefused(f"host [{host}]: IPv6 zone identifiers are not allowed")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise DestinationRefused(f"host [{host}] is not a valid IPv6 address") from None
    name = host.lower()
    if not name.isascii() or not _NAME.fullmatch(name):
        raise DestinationRefused(f"host {host!r} is not a valid host name")
    if ends_in_number(name):
        try:
            return ipaddress.IPv4Address(name)  # exactly four decimal octets, no leading 0
        except ValueError:
            raise DestinationRefused(
                f"host {host!r} is a non-canonical numeric address "
                "(resolvers read it as an IP address); write the address as a dotted quad"
            ) from None
    return None


def ends_in_number(name: str) -> bool:
    """Whether the last label of `name` is a number (decimal, or hex with 0x), which makes
    resolvers and the WHATWG URL standard read the whole host as an IPv4 address."""
    last = name.removesuffix(".").rpartition(".")[2]
    return bool(last) and (last.isdigit() or _HEX_NUMBER.fullmatch(last) is not None)


def host_refusal(host: str, allowed: Sequence[Network]) -> str | None:
    """Why the URL host `host` (yarl's `raw_host`) may not be connected to; None for an
    allowed IP literal or a well-formed DNS name."""
    try:
        address = host_address(host)
    except DestinationRefused as exc:
        return str(exc)
    if address is None:
        return None
    reason = refusal(address, allowed)
    if reason is None or reason.startswith(f"{address} "):
        return reason
    return f"host {host}: {reason}"


def parse_url(text: str | URL) -> URL:
    """`text` as the HTTP client will see it (yarl, IDNA-normalised host); DestinationRefused
    when it is not a URL at all."""
    if isinstance(text, URL):
        return text
    try:
        url = URL(text)
        url.raw_host  # noqa: B018 - force the host to be parsed
    except (ValueError, TypeError) as exc:
        raise DestinationRefused(f"not a valid URL: {exc}") from None
    return url


def url_refusal(url: URL, allowed: Sequence[Network]) -> str | None:
    """Why the client may not send to `url`: not https, no host, or a refused host."""
    if url.scheme != "https":
        return f"only https:// destinations are allowed, got scheme {url.scheme or 'none'!r}"
    return host_refusal(url.raw_host or "", allowed)


def check_destination(url: str | URL, allowed: Sequence[Network]) -> URL:
    """The parsed URL, to be handed to the HTTP client as is; DestinationRefused when the
    guard refuses it (the message names the host, never the query)."""
    parsed = parse_url(url)
    reason = url_refusal(parsed, allowed)
    if reason is not None:
        raise DestinationRefused(reason)
    return parsed


def origin(url: URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) as connected to: what decides "same origin" for redirects."""
    return url.scheme, (url.raw_host or "").lower(), url.port


# A scheme and authority as written in a template: stops at the first character that
# cannot be part of the authority of a URL written inside a string literal.
_TEMPLATE_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://([^/?#\s\"'\\]*)(.?)")


def template_refusal(source: str, allowed: Sequence[Network]) -> str | None:
    """Why a URL template may not be stored: a URL written literally in its text whose host
    is an IP literal (or numeric form) the guard refuses. A host built from data can only be
    checked when the template is rendered, before each request."""
    for match in _TEMPLATE_URL.finditer(source):
        authority, stop = match[1], match[2]
        try:
            host = URL(f"https://{authority}/").raw_host or ""
        except (ValueError, TypeError):
            continue
        complete = stop != "" and stop in "/?#"
        if not complete:
            # The literal ends here and data may continue the host ("https://10.0.0." +
            # user.x): judge it only when it is already a complete, canonical address.
            try:
                ipaddress.ip_address(host)
            except ValueError:
                continue
        elif ":" not in host and not ends_in_number(host.lower()):
            continue  # a DNS name (or a placeholder such as %s): checked when sending
        reason = host_refusal(host, allowed)
        if reason is not None:
            return f"{match[0][: match.end(1) - match.start()]!r}: {reason}"
    return None


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
