"""spec.limits compiled: carried as given, absent (and out of the version hash) when unset."""

from __future__ import annotations

import orjson
from test_compiler import SOURCES, binding, compile_text

from switchyard.sidecar.contract.config import CompiledConfig


def test_limits_are_compiled_as_given() -> None:
    res = compile_text(SOURCES + binding(
        "{primary: {sourceRef: {name: oa}}, limits: {requestsPerMinute: 30, tokensPerDay: 2000000,"
        " perCaller: {tokensPerMinute: 5000}}}"
    ))
    lim = res.config.bindings[0].limits
    assert lim is not None
    assert (lim.requests_per_minute, lim.tokens_per_minute, lim.tokens_per_day) == (30, None, 2_000_000)
    assert lim.per_caller is not None and lim.per_caller.tokens_per_minute == 5000
    # The wire form round-trips (the sidecar reads it back).
    assert CompiledConfig.from_wire(res.config.to_wire()).bindings[0].limits == lim


def test_no_limits_leave_the_config_as_before() -> None:
    plain = compile_text(SOURCES + binding("{primary: {sourceRef: {name: oa}}}")).config
    empty = compile_text(SOURCES + binding("{primary: {sourceRef: {name: oa}}, limits: {perCaller: {}}}")).config
    assert plain.bindings[0].limits is None and empty.bindings[0].limits is None
    assert plain.version == empty.version
    assert b"limits" not in plain.to_wire()
    assert "limits" not in orjson.loads(plain.to_wire())["bindings"][0]


def test_a_limit_changes_the_version() -> None:
    a = compile_text(SOURCES + binding("{primary: {sourceRef: {name: oa}}, limits: {requestsPerMinute: 30}}")).config
    b = compile_text(SOURCES + binding("{primary: {sourceRef: {name: oa}}, limits: {requestsPerMinute: 31}}")).config
    assert a.version != b.version
