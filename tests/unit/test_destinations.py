"""The destination guard: public addresses pass, private and special ones are refused."""

from __future__ import annotations

import ipaddress

import pytest

from app.domain.destinations import is_ip_literal, refusal


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "fd00:ec2::254",
        "0.0.0.0",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_refuses_non_public_addresses(address: str) -> None:
    assert refusal(address, []) is not None


def test_cloud_metadata_refusal_says_so() -> None:
    reason = refusal("169.254.169.254", [])
    assert reason is not None
    assert "metadata" in reason or "link-local" in reason


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1"])
def test_allows_public_addresses(address: str) -> None:
    assert refusal(address, []) is None


def test_allowed_network_lets_a_refused_address_through() -> None:
    allowed = [ipaddress.ip_network("127.0.0.0/8")]
    assert refusal("127.0.0.1", allowed) is None
    assert refusal("::ffff:127.0.0.1", allowed) is None
    assert refusal("10.0.0.1", allowed) is not None


@pytest.mark.parametrize(
    ("host", "literal"), [("127.0.0.1", True), ("[::1]", True), ("example.com", False)]
)
def test_is_ip_literal(host: str, literal: bool) -> None:
    assert is_ip_literal(host) is literal
