"""Addresses a ModelSource may not reach by default: link-local and cloud metadata. Pure.

Shared by the compiler, which judges a ``baseURL`` as written (``compiler/network.py``),
and the sidecar's connector, which judges what a name resolves to at connect time
(``upstream.GuardedResolver``): the instance metadata service hands out the node's
cloud credentials to whoever asks from the pod network.
"""

from __future__ import annotations

import ipaddress
import re
import socket

#: Cloud instance-metadata endpoints by name (their addresses are covered by the ranges).
METADATA_HOSTS = frozenset({
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.internal",
})
#: Metadata addresses outside the link-local ranges (AWS's IPv6 IMDS, Alibaba's).
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")})
LINK_LOCAL_V4 = ipaddress.ip_network("169.254.0.0/16")
LINK_LOCAL_V6 = ipaddress.ip_network("fe80::/10")
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def host_address(host: str) -> Address | None:
    """The IP address a URL's host names, if it is written as one (any legacy form)."""
    h = host.strip("[]").lower()
    if "%" in h:  # an IPv6 zone id (fe80::1%eth0)
        h = h.split("%", 1)[0]
    try:
        addr: Address = ipaddress.ip_address(h)
    except ValueError:
        if not _NUMERIC_HOST.match(h):
            return None
        try:  # what getaddrinfo would make of "2852039166" or "0xa9.0xfe.0xa9.0xfe"
            addr = ipaddress.IPv4Address(socket.inet_aton(h))
        except OSError:
            return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def is_link_local(host: str) -> bool:
    """Link-local or a cloud metadata endpoint."""
    name = host.strip("[]").lower().rstrip(".")
    if name in METADATA_HOSTS:
        return True
    addr = host_address(name)
    if addr is None:
        return False
    return addr in METADATA_ADDRESSES or addr in LINK_LOCAL_V4 or addr in LINK_LOCAL_V6 or addr.is_link_local
