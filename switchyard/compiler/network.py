"""Where a ModelSource may send requests (and its credential): the base-URL policy. Pure.

The compiler holds a tier's credential and the sidecar sends it to the tier's
``baseURL``. Two kinds of URL are refused unless the ModelSource opts in with
``spec.network``, because they are how a credential or a request goes somewhere it
should not:

- **link-local and cloud metadata addresses** (``169.254.0.0/16``, ``fe80::/10``,
  ``169.254.169.254``, ``fd00:ec2::254``, ``metadata.google.internal``, ...): the
  instance metadata service hands out the node's cloud credentials to whoever asks
  from the pod network. Refused whatever the scheme; ``spec.network.allowLinkLocal:
  true`` lifts it (a link-local model server on purpose).
- **plain http to anything that is not an explicitly local runtime**: the key would
  cross the network in clear. Allowed without opting in for loopback and private
  addresses (``127.0.0.0/8``, ``::1``, ``10/8``, ``172.16/12``, ``192.168/16``,
  ``fc00::/7``), ``localhost`` and ``*.localhost``, single-label names (``ollama``,
  ``vllm``: compose or Kubernetes short service names) and in-cluster service names
  (``*.svc``, ``*.svc.cluster.local``, ``*.cluster.local``); anything else needs
  ``spec.network.allowInsecureHTTP: true``.

Addresses are judged as written: a host given as a number in any of the forms the C
resolver accepts (``2852039166``, ``0xa9.0xfe.0xa9.0xfe``, ``169.254.43518``,
``[::ffff:169.254.169.254]``) is read as the address it names. A DNS name is judged by
its name only (the compiler does no lookups); the sidecar checks what it resolves to
when it connects (``sidecar/upstream.py``, ``GuardedResolver``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

# The address classes live with the sidecar, whose connector checks resolved addresses
# too; re-exported here as the policy's vocabulary.
from switchyard.netguard.addresses import (  # noqa: F401
    LINK_LOCAL_V4,
    LINK_LOCAL_V6,
    METADATA_ADDRESSES,
    METADATA_HOSTS,
    host_address,
    is_link_local,
)

LINK_LOCAL_NOT_ALLOWED = "LinkLocalNotAllowed"
INSECURE_HTTP_NOT_ALLOWED = "InsecureHTTPNotAllowed"
INVALID_BASE_URL = "InvalidBaseURL"

CLUSTER_SUFFIXES = (".svc", ".svc.cluster.local", ".cluster.local", ".localhost")


@dataclass(frozen=True)
class Refusal:
    """Why a base URL is refused: a CamelCase reason and a message for status."""

    reason: str
    message: str


def is_local_runtime(host: str) -> bool:
    """Loopback, a private address, or a name that only resolves inside the machine or cluster."""
    name = host.strip("[]").lower().rstrip(".")
    addr = host_address(name)
    if addr is not None:
        return addr.is_loopback or (addr.is_private and not is_link_local(name) and not addr.is_unspecified)
    if name == "localhost" or "." not in name:
        return True
    return name.endswith(CLUSTER_SUFFIXES)


def check_base_url(url: str, *, allow_link_local: bool = False, allow_insecure_http: bool = False) -> Refusal | None:
    """None when the sidecar may send this source's requests to ``url``; else why not."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError as exc:
        return Refusal(INVALID_BASE_URL, f"baseURL {url!r} does not parse: {exc}")
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        return Refusal(INVALID_BASE_URL, f"baseURL {url!r} is not an absolute http(s) URL")
    if is_link_local(host) and not allow_link_local:
        return Refusal(
            LINK_LOCAL_NOT_ALLOWED,
            f"baseURL host {host} is a link-local or cloud metadata address; "
            "set spec.network.allowLinkLocal: true if this is really a model server",
        )
    if scheme == "http" and not allow_insecure_http and not is_local_runtime(host):
        return Refusal(
            INSECURE_HTTP_NOT_ALLOWED,
            f"baseURL {scheme}://{host} is plain http to a non-local host: the credential would travel in clear; "
            "use https, or set spec.network.allowInsecureHTTP: true",
        )
    return None
