# ruff: noqa: RUF001 - full-width digits and other look-alike characters are the point here
"""The destination guard decides on the host exactly as yarl/aiohttp will connect to it.

Every bypass form found against the urlsplit-based guard (full-width digits, ideographic
dots, legacy numeric IPv4 forms, IPv6 forms carrying a private IPv4 address) is refused,
at send time (`check_destination` / `WebhookClient.check_url`) and at apply time (job and
authorization validation with the allowed networks); redirects are parsed the same way.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from yarl import URL

from app.domain.authorizations import parse_authorization
from app.domain.destinations import (
    DestinationRefused,
    check_destination,
    host_address,
    refusal,
    template_refusal,
)
from app.domain.errors import ConfigError
from app.domain.jobs import parse_job_config
from app.settings import Settings
from app.transport.http import (
    InvalidRedirect,
    RedirectError,
    TooManyRedirects,
    UnsafeRedirect,
    WebhookClient,
    redirect_target,
)

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]

FULL_WIDTH = str.maketrans("0123456789.", "０１２３４５６７８９．")

BYPASS_HOSTS = [
    "１２７.０.０.１",  # full-width digits
    "127。0。0。1",  # ideographic full stops
    "127．0．0．1",  # full-width full stops
    "127｡0｡0｡1",  # half-width ideographic full stops
    "１６９.２５４.１６９.２５４",  # cloud metadata, full width
    "①②⑦.0.0.1",  # circled digits (NFKC)
    "１２７．１",  # full-width short form
    "2130706433",  # 127.0.0.1 as one decimal number
    "0x7f000001",  # ... as one hex number
    "017700000001",  # ... as one octal number
    "0177.0.0.1",  # octal first octet
    "0300.0250.0.1",  # 192.168.0.1 in octal
    "127.1",  # short form
    "127.0.1",
    "0x7f.1",
    "0X7F.0.0.1",
    "127.000.000.001",
    "127.0.0.01",
    "1.0x7f.0.1",
    "127.0.0.1.",  # trailing dot
    "169.254.169.254.",
    "0",  # 0.0.0.0: this host
    "127.0.0.1",
    "169.254.169.254",
    "10.0.0.1",
    "100.64.0.1",  # carrier-grade NAT
    "[::1]",
    "[::]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[0:0:0:0:0:ffff:7f00:1]",
    "[::ffff:169.254.169.254]",
    "[::127.0.0.1]",  # IPv4-compatible (deprecated)
    "[::ffff:0:7f00:1]",  # IPv4-translated
    "[64:ff9b::127.0.0.1]",  # NAT64 of loopback
    "[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
    "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
    "[64:ff9b:1::a00:1]",  # local-use NAT64
    "[2002:7f00:1::1]",  # 6to4 of 127.0.0.1
    "[2002:a9fe:a9fe::]",  # 6to4 of 169.254.169.254
    "[2001::1]",  # Teredo
    "[fe80::1]",
    "[fe80::1%25eth0]",  # zone identifier
    "[fec0::1]",  # site-local
    "[fc00::1]",
    "[fd00:ec2::254]",
    "[ff02::1]",
]


def client(allowed: str = "") -> WebhookClient:
    return WebhookClient(Settings(allowed_private_nets=allowed))


@pytest.mark.parametrize("host", BYPASS_HOSTS)
def test_every_bypass_form_is_refused_at_send_time(host: str) -> None:
    url = f"https://{host}:18443/x"
    with pytest.raises(DestinationRefused):
        check_destination(url, [])
    with pytest.raises(DestinationRefused):
        client().check_url(url)


@pytest.mark.parametrize(
    "host",
    ["１２７.０.０.１", "127。0。0。1", "１６９.２５４.１６９.２５４", "127.1", "2130706433"],
)
def test_the_host_judged_is_the_host_yarl_connects_to(host: str) -> None:
    """What urlsplit called a name, yarl (aiohttp) makes an IP literal or a numeric host:
    the guard must see the latter."""
    raw_host = URL(f"https://{host}/").raw_host
    assert raw_host is not None
    assert raw_host.replace(".", "").isdigit()  # aiohttp skips the resolver for it
    with pytest.raises(DestinationRefused):
        client().check_url(f"https://{host}/")


def test_full_width_loopback_passes_only_inside_the_allowed_networks() -> None:
    checked = client("127.0.0.0/8").check_url("https://１２７.０.０.１:18443/x")
    assert checked.raw_host == "127.0.0.1" and checked.port == 18443
    with pytest.raises(DestinationRefused, match="loopback"):
        client("10.0.0.0/8").check_url("https://１２７.０.０.１:18443/x")


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f.1", "127.0.0.1."])
def test_non_canonical_numeric_hosts_are_refused_even_inside_allowed_networks(host: str) -> None:
    with pytest.raises(DestinationRefused, match="non-canonical numeric"):
        client("127.0.0.0/8").check_url(f"https://{host}/x")


def test_metadata_refusal_says_so() -> None:
    with pytest.raises(DestinationRefused, match="metadata"):
        check_destination("https://１６９.２５４.１６９.２５４/latest", [])


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/in",
        "https://hooks.example.com./in",
        "https://xn--bcher-kva.example/in",
        "https://bücher.example/in",
        "https://93.184.216.34/in",
        "https://[2606:2800:220:1::1]/in",
        "https://[::ffff:93.184.216.34]/in",
        "https://[64:ff9b::5db8:d822]/in",  # NAT64 of a public address
        "https://[2002:5db8:d822::1]/in",  # 6to4 of a public address
        "https://localhost/in",  # a name: its addresses are judged by the resolver
        "https://1e100.net/in",
        "https://123.example.com/in",
    ],
)
def test_public_addresses_and_names_pass(url: str) -> None:
    assert client().check_url(url).scheme == "https"


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/in",
        "ftp://hooks.example.com/in",
        "https:///in",
        "https://[::1/x",
        "https://hooks.example.com:99999/in",
        "https://exa mple.com/in",
        "https://127.0.0.1%2e/in",
        "javascript:alert(1)",
    ],
)
def test_unusable_urls_are_refused(url: str) -> None:
    with pytest.raises(DestinationRefused):
        client().check_url(url)


def test_refusal_messages_never_carry_the_query() -> None:
    with pytest.raises(DestinationRefused) as caught:
        client().check_url("https://127.0.0.1/x?api_key=s3cr3t-value")
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    ("address", "allowed", "refused"),
    [
        ("::ffff:127.0.0.1", LOOPBACK, False),
        ("64:ff9b::7f00:1", [], True),
        ("64:ff9b::808:808", [], False),
        ("2002:a00:1::1", [], True),
        ("2002:808:808::1", [], False),
        ("fe80::1%eth0", [ipaddress.ip_network("fe80::/10")], True),
        ("100.64.0.1", [], True),
        ("192.0.0.8", [], True),
        ("8.8.8.8", [], False),
    ],
)
def test_refusal_of_addresses(address: str, allowed: list[Any], refused: bool) -> None:
    assert (refusal(address, allowed) is not None) is refused


def test_host_address_reads_hosts_as_the_client_does() -> None:
    assert host_address("127.0.0.1") == ipaddress.ip_address("127.0.0.1")
    assert host_address("::1") == ipaddress.ip_address("::1")
    assert host_address("hooks.example.com") is None
    with pytest.raises(DestinationRefused):
        host_address("127.1")


# --- redirects ---------------------------------------------------------------------


def test_redirect_errors_are_retryable_client_errors_not_refusals() -> None:
    for kind in (TooManyRedirects, InvalidRedirect, UnsafeRedirect):
        assert issubclass(kind, RedirectError)
        assert issubclass(kind, aiohttp.ClientError)
        assert not issubclass(kind, DestinationRefused)


@pytest.mark.parametrize("location", ["https://[::1/x", "https://h:99999/", "https://[::1]x/"])
def test_invalid_location_is_an_invalid_redirect(location: str) -> None:
    with pytest.raises(InvalidRedirect, match="not a valid URL"):
        redirect_target(URL("https://hooks.example.com/in"), location)


def test_redirect_target_is_normalised_like_any_url() -> None:
    base = URL("https://hooks.example.com/in")
    assert redirect_target(base, "/moved?a=1") == URL("https://hooks.example.com/moved?a=1")
    target = redirect_target(base, "https://１２７.０.０.１:8443/x")
    assert target.raw_host == "127.0.0.1"
    with pytest.raises(DestinationRefused):
        client().check_url(target)


@given(st.text(max_size=60))
def test_any_location_is_a_url_or_an_invalid_redirect(location: str) -> None:
    try:
        target = redirect_target(URL("https://hooks.example.com/in"), location)
    except InvalidRedirect:
        return
    with contextlib.suppress(DestinationRefused):
        client().check_url(target)


# --- apply time ---------------------------------------------------------------------


def job(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": "audience_triggers", "label": "j", "audiences": ["a"]}
    doc.update(fields)
    return doc


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> dict[str, str]:
    return {p.field: p.rule for p in exc.value.problems}


@pytest.mark.parametrize("host", BYPASS_HOSTS)
def test_apply_refuses_ip_literal_webhook_urls(host: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job_config(job(webhook_url=f"https://{host}/in"), allowed=[])
    assert "webhook_url" in problems(caught)


def test_apply_accepts_allowed_literals_and_names() -> None:
    parse_job_config(job(webhook_url="https://１２７.０.０.１:8443/in"), allowed=LOOPBACK)
    parse_job_config(job(webhook_url="https://hooks.example.com/in"), allowed=[])


def test_stored_jobs_are_not_rejudged_without_the_allowed_networks() -> None:
    """A job read back from the topic still loads; the worker refuses it before sending."""
    assert parse_job_config(job(webhook_url="https://127.0.0.1/in")).webhook_url


def test_apply_refusal_names_the_field_and_the_reason() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job_config(job(webhook_url="https://169.254.169.254/latest"), allowed=[])
    assert "metadata" in problems(caught)["webhook_url"]
    assert "webhook_url: destination refused" in str(caught.value)


@pytest.mark.parametrize(
    "template",
    [
        '"https://127.0.0.1/hooks/" + user.id',
        '"https://１２７.０.０.１:8443/hooks/" + user.id',
        '"https://127。0。0。1/x"',
        "'https://169.254.169.254/latest'",
        'local base = "https://10.0.0.1:8443"; base + "/in/" + user.id',
        '"https://[::1]:8443/in"',
        '"https://0x7f.1/in"',
        '"https://2130706433/in"',
        'std.format("https://127.0.0.1/%s", [user.id])',
        "|||\n  https://192.168.1.1/in\n|||",
    ],
)
def test_apply_refuses_url_templates_with_a_literal_refused_host(template: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job_config(job(url_template=template), allowed=[])
    assert "destination refused" in problems(caught)["url_template"]
    assert template_refusal(template, []) is not None


@pytest.mark.parametrize(
    "template",
    [
        '"https://" + user.data.host + "/in"',
        'std.format("https://%s/in", [user.data.host])',
        '"https://10.0.0." + user.data.n + "/in"',
        '"https://hooks.example.com/users/" + user.id',
        '"https://hooks.example.com/?next=https://example.org/"',
    ],
)
def test_apply_accepts_templates_whose_host_comes_from_data(template: str) -> None:
    assert parse_job_config(job(url_template=template), allowed=[]).url_template == template


def auth(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "a1",
        "label": "a",
        "method": "oauth2_client_credentials",
        "client_id": "c",
        "client_secret": "s",
    }
    doc.update(fields)
    return doc


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "１２７.０.０.１", "169.254.169.254", "[::1]", "127.1"]
)
def test_apply_refuses_ip_literal_token_urls(host: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_authorization(auth(token_url=f"https://{host}/token"), allowed=[])
    assert "destination refused" in problems(caught)["token_url"]
    parse_authorization(auth(token_url=f"https://{host}/token"))  # stored records load


def test_apply_accepts_allowed_token_urls() -> None:
    parse_authorization(auth(token_url="https://127.0.0.1:9443/token"), allowed=LOOPBACK)
    parse_authorization(auth(token_url="https://login.example.com/token"), allowed=[])


def test_authorization_names_its_secret_headers_and_params() -> None:
    headers = parse_authorization(
        {"id": "h", "label": "h", "method": "headers", "headers": "X-Api-Key: k", "params": "t=1"}
    )
    assert headers.secret_names == (["X-Api-Key"], ["t"])
    assert parse_authorization(auth(token_url="https://login.example.com/t")).secret_names == (
        ["Authorization"],
        [],
    )


# --- property: whatever yarl connects to, the guard judged ---------------------------

REFUSED_NETS = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
]


@st.composite
def refused_ipv4(draw: st.DrawFn) -> ipaddress.IPv4Address:
    net = draw(st.sampled_from(REFUSED_NETS))
    offset = draw(st.integers(0, net.num_addresses - 1))
    return ipaddress.IPv4Address(int(net.network_address) + offset)


def _part(value: int, style: str) -> str:
    return {"dec": str(value), "hex": hex(value), "oct": "0" + oct(value)[2:]}[style]


@st.composite
def numeric_ipv4_host(draw: st.DrawFn) -> str:
    """An IPv4 address in one of the forms inet_aton/getaddrinfo accept."""
    ip = int(draw(refused_ipv4()))
    shape = draw(st.sampled_from(["a.b.c.d", "a.b.c", "a.b", "a"]))
    octets = [(ip >> s) & 0xFF for s in (24, 16, 8, 0)]
    values = {
        "a.b.c.d": octets,
        "a.b.c": [octets[0], octets[1], ip & 0xFFFF],
        "a.b": [octets[0], ip & 0xFFFFFF],
        "a": [ip],
    }[shape]
    styles = draw(st.lists(st.sampled_from(["dec", "dec", "hex", "oct"]), min_size=4))
    return ".".join(_part(v, s) for v, s in zip(values, styles, strict=False))


@st.composite
def ipv6_host(draw: st.DrawFn) -> str:
    v4 = draw(refused_ipv4())
    form = draw(
        st.sampled_from(
            ["::ffff:{}", "::{}", "64:ff9b::{}", "::ffff:0:{}", "0:0:0:0:0:ffff:{}", "2002:{}"]
        )
    )
    if form == "2002:{}":
        packed = int(v4)
        text = f"2002:{packed >> 16:x}:{packed & 0xFFFF:x}::1"
    elif draw(st.booleans()):
        text = form.format(v4)
    else:
        text = form.format(f"{int(v4) >> 16:x}:{int(v4) & 0xFFFF:x}")
    return f"[{text}]"


@st.composite
def disguised(draw: st.DrawFn, inner: st.SearchStrategy[str]) -> str:
    """A host in a form some layer normalises: full-width digits, other dots, upper case,
    a trailing dot."""
    host = draw(inner)
    if draw(st.booleans()) and not host.startswith("["):
        host = host.translate(FULL_WIDTH) if draw(st.booleans()) else host
        dot = draw(st.sampled_from([".", "。", "．", "｡"]))
        host = host.replace(".", dot).replace("．", dot)
    if draw(st.booleans()):
        host = host.upper()
    if draw(st.booleans()) and not host.startswith("["):
        host += "."
    return host


HOSTS = st.one_of(
    disguised(numeric_ipv4_host()),
    disguised(ipv6_host()),
    refused_ipv4().map(str).map(lambda h: h.translate(FULL_WIDTH)),
    st.text(alphabet=st.sampled_from("0123456789.xXaf:[]%０１７。．"), max_size=24),
    st.text(max_size=20),
)


def connected_address(raw_host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a socket would connect to for `raw_host` without DNS: what getaddrinfo
    (numeric only) or inet_aton (the permissive legacy parser) makes of it."""
    candidates: list[str] = []
    try:
        infos = socket.getaddrinfo(raw_host, 443, flags=socket.AI_NUMERICHOST)
        candidates += [str(info[4][0]) for info in infos]
    except (OSError, UnicodeError, ValueError):
        pass
    with contextlib.suppress(OSError, UnicodeError, ValueError):
        candidates.append(socket.inet_ntoa(socket.inet_aton(raw_host)))
    for text in candidates:
        return ipaddress.ip_address(text.split("%")[0])
    return None


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(HOSTS)
def test_whenever_yarl_connects_to_a_refused_address_the_guard_refuses(host: str) -> None:
    url_text = f"https://{host}:8443/x"
    try:
        url = URL(url_text)
        raw_host = url.raw_host
    except ValueError:
        with pytest.raises(DestinationRefused):  # not a URL: refused, never a crash
            check_destination(url_text, [])
        return
    assume(raw_host)
    assert raw_host is not None
    address = connected_address(raw_host)
    try:
        check_destination(url_text, [])
    except DestinationRefused:
        return  # refused: fine whatever the host was
    # The guard let it through: it must not be an address in a refused range.
    assert address is None or refusal(address, []) is None, (host, raw_host, address)


@given(st.text(max_size=80))
def test_the_guard_only_ever_raises_destination_refused(text: str) -> None:
    for candidate in (text, f"https://{text}/x"):
        with contextlib.suppress(DestinationRefused):
            check_destination(candidate, LOOPBACK)
