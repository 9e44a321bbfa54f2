"""Which addresses a client metadata fetch may reach: public unicast only.

Checked on every address a name resolves to, and the connection then goes to a checked
address (never a second resolution), so DNS rebinding cannot slip a private one in.
"""

from __future__ import annotations

import ipaddress

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def refusal(address: Address, allow_loopback: bool = False) -> str | None:
    """Why a fetch may not go to `address`, or None. `allow_loopback` is the test-only
    setting: loopback then passes, nothing else that is not public does."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refusal(address.ipv4_mapped, allow_loopback)
    if address.is_loopback:
        return None if allow_loopback else "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "not a unicast address"
    if address.is_private or not address.is_global:
        return "a private address"
    return None
