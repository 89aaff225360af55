"""A DNS resolver for aiohttp that refuses link-local and cloud metadata addresses.

Used by the sidecar's upstream pools and the operator's catalog fetch, so a ``baseURL``
name that resolves to the instance metadata service is refused at connect time.
"""

from __future__ import annotations

import errno
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from switchyard.netguard.addresses import is_link_local


class LinkLocalRefused(OSError):
    """A baseURL name resolved to a link-local or cloud metadata address."""


class GuardedResolver(AbstractResolver):
    """DNS resolution that refuses link-local and cloud metadata addresses.

    The compiler refuses such addresses written in a ``baseURL`` (``compiler/network.py``),
    but it does no lookups: a name can resolve to ``169.254.169.254`` (a typo, a hostile
    DNS record, DNS rebinding). This closes that at connect time, on every resolution
    (aiohttp's DNS cache lasts ``ttl_dns_cache``), for sources without
    ``spec.network.allowLinkLocal``. If any address of the answer is refused, the whole
    name is: a mixed answer is not one to pick from."""

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for a in answers:
            if is_link_local(a["host"]):
                raise LinkLocalRefused(
                    errno.EACCES,
                    f"{host} resolves to {a['host']}, a link-local or cloud metadata address "
                    "(set spec.network.allowLinkLocal: true on the ModelSource if that is really a model server)",
                )
        return answers

    async def close(self) -> None:
        await self._inner.close()
