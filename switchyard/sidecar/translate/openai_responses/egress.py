"""The egress face of the Responses adapter, which no upstream uses: no
CapabilityProfile protocol speaks the Responses API, so every request crosses to its
tier through the neutral form and another protocol's egress. Each function here raises
``IngressOnly`` (``_wire``), so a wiring mistake fails loudly instead of sending a
Responses body upstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switchyard.sidecar.contract.config import CompiledTier

from .. import neutral as n
from ..base import UpstreamCall, UpstreamErrorInfo
from ._wire import IngressOnly


def build_call(request: n.Request, tier: CompiledTier, client_headers: Mapping[str, str] | None = None) -> UpstreamCall:
    raise IngressOnly("build_call")


def build_passthrough_call(body: dict[str, Any], tier: CompiledTier, client_headers: Mapping[str, str]) -> UpstreamCall:
    raise IngressOnly("build_passthrough_call")


def parse_response(body: dict[str, Any]) -> n.Response:
    raise IngressOnly("parse_response")


def read_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamErrorInfo:
    raise IngressOnly("read_error")


def stream_decoder() -> Any:
    raise IngressOnly("stream_decoder")
