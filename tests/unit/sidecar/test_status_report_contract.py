"""The status report a sidecar gives (``GET /admin/status``) is one typed contract.

The sidecar builds it through the model, field for field the JSON sidecars sent before
the model existed (plus ``report_version``); the operator reads old, new and malformed
reports without crashing, and a pod whose report it cannot read is a problem of that pod.
The state names are defined once and every user takes them from there.
"""

from __future__ import annotations

import typing

import orjson
import pytest
from aiohttp import web

from switchyard.api import status as api_status
from switchyard.operator.push import AdminTimeouts, get_status
from switchyard.operator.selection import PodInfo
from switchyard.sidecar import metrics
from switchyard.sidecar.http.admin import status_report
from switchyard.sidecar.contract.config import CompiledBinding, CompiledConfig, CompiledProfile, CompiledTier
from switchyard.sidecar.contract.report import (
    FAILURE_CLASSES,
    REPORT_VERSION,
    TIER_STATES,
    ReportError,
    SidecarReport,
    TierState,
    parse_report,
)
from switchyard.sidecar.routing import breaker
from switchyard.sidecar.state import LastUsed, Runtime, binding_key

PROFILE = CompiledProfile(name="p", protocol="openai-chat", features={}, on_unsupported={})


def tier(i: int, problem: str | None = None) -> CompiledTier:
    return CompiledTier(index=i, source=f"s{i}", provider="openai", protocol="openai-chat", base_url=f"http://x{i}/v1",
                        model=f"m{i}", credential="sk-not-in-any-report", profile=PROFILE, problem=problem)


def runtime_in_every_state() -> Runtime:
    """Tier 0 open (a check running), 1 disabled, 2 rate-limited, 3 closed and last used, 4 unresolvable."""
    rt = Runtime()
    clock = [100.0]
    rt.clock = lambda: clock[0]
    rt.install(CompiledConfig(bindings=[
        CompiledBinding(name="b", namespace="ns", aliases=["b", "bee"], tiers=[tier(0), tier(1), tier(2), tier(3),
                                                                                tier(4, "SourceNotFound: x")]),
        CompiledBinding(name="u", namespace="ns", aliases=["u"], unbound=True),
    ]).with_version())
    b = rt.snapshot.by_name["b"]  # type: ignore[union-attr]
    h = [rt.health(b, t) for t in b.tiers]
    for _ in range(3):
        breaker.record_failure(h[0], b.breaker, breaker.Admission(True), breaker.TRANSIENT, "503", 100.0, 5000.0)
    h[0].probing = True
    breaker.record_failure(h[1], b.breaker, breaker.Admission(True), breaker.PERMANENT, "401", 100.0, 5001.0,
                           fingerprint="f")
    breaker.record_failure(h[2], b.breaker, breaker.Admission(True), breaker.RATE_LIMITED, "429", 100.0, 5002.0,
                           retry_after=7.25)
    breaker.record_success(h[3], b.breaker, breaker.Admission(True), 5003.0)
    rt.last_used[binding_key(b)] = LastUsed(3, "s3", "m3", 5003.5)
    clock[0] = 105.0
    return rt


# The keys of the report as sidecars sent it before the contract existed (plus report_version).
TOP = ["configured", "version", "schema_version", "report_version", "loaded_at", "draining", "bindings"]
BINDING = ["name", "namespace", "aliases", "unbound", "last_used", "tiers"]
TIER = ["tier", "source", "provider", "protocol", "model", "resolvable", "problem", "breaker"]
BREAKER = ["state", "consecutive_failures", "last_failure", "last_failure_class", "last_failure_at", "last_success_at",
           "transitions"]


def test_the_sidecar_sends_the_same_json_as_before_field_for_field() -> None:
    report = status_report(runtime_in_every_state())
    wire = orjson.loads(orjson.dumps(report.to_wire()))
    assert list(wire) == TOP and wire["report_version"] == REPORT_VERSION
    b = wire["bindings"][0]
    assert list(b) == BINDING and b["last_used"] == {"tier": 3, "source": "s3", "model": "m3", "at": 5003.5}
    assert all(list(t) == TIER for t in b["tiers"])
    breakers = [t["breaker"] for t in b["tiers"]]
    # Conditional fields appear only when they apply, as before.
    assert list(breakers[0]) == [*BREAKER, "retry_in_seconds", "probing"]
    assert (breakers[0]["state"], breakers[0]["retry_in_seconds"], breakers[0]["probing"]) == ("open", 25.0, True)
    assert breakers[0]["transitions"] == [{"at": 5000.0, "from": "closed", "to": "open",
                                           "reason": "3 consecutive failures, last: 503"}]
    assert list(breakers[1]) == [*BREAKER, "disabled_reason"] and breakers[1]["state"] == "disabled"
    assert list(breakers[2]) == [*BREAKER, "rate_limited_for_seconds"]
    assert (breakers[2]["state"], breakers[2]["rate_limited_for_seconds"]) == ("rate-limited", 2.25)
    assert list(breakers[3]) == BREAKER and breakers[3]["state"] == "closed"
    assert b["tiers"][4]["resolvable"] is False and b["tiers"][4]["problem"] == "SourceNotFound: x"
    assert "sk-not-in-any-report" not in orjson.dumps(wire).decode()
    assert parse_report(wire) == report  # what goes out comes back in


def test_a_sidecar_without_config_reports_so() -> None:
    wire = status_report(Runtime()).to_wire()
    assert wire == {"configured": False, "version": None, "schema_version": 1, "report_version": 1, "loaded_at": None,
                    "draining": False, "bindings": []}
    assert parse_report(wire).running is None


def test_a_report_from_a_sidecar_before_report_version_reads_as_version_1() -> None:
    old = status_report(runtime_in_every_state()).to_wire()
    del old["report_version"]
    report = parse_report(old)
    assert report.report_version == 1 and report.running == report.version


def test_additions_of_a_newer_sidecar_are_ignored_and_an_unknown_state_is_not_guessed() -> None:
    report = parse_report({"configured": True, "version": "v", "new_top_level": {"x": 1}, "bindings": [
        {"name": "b", "namespace": "ns", "new_field": 1, "tiers": [
            {"tier": 0, "source": "s", "model": "m", "breaker": {"state": "cooling-down", "shiny": True}},
            {"tier": 1, "source": "s", "model": "m", "breaker": {"state": "open", "last_failure_class": "cosmic"}},
        ]}]})
    entry = report.binding("ns", "b")
    assert entry is not None
    assert [t.breaker.state for t in entry.tiers] == [None, TierState.OPEN]
    assert entry.tiers[1].breaker.last_failure_class == "cosmic"  # free text; the operator keeps only known classes


@pytest.mark.parametrize("version", [2, 99])
def test_a_newer_report_version_is_refused_whole(version: int) -> None:
    with pytest.raises(ReportError) as e:
        parse_report({"configured": True, "version": "v", "report_version": version, "bindings": "whatever"})
    assert e.value.newer_version and f"report_version {version}" in str(e.value)


@pytest.mark.parametrize(("body", "where"), [
    ([], "not a JSON object"),
    ({"bindings": "nope"}, "bindings: "),
    ({"bindings": [{"name": "b", "tiers": [{"tier": "sk-live-abcdef", "source": "s", "model": "m"}]}]},
     "bindings.0.tiers.0.tier: "),
    ({"bindings": [{"tiers": []}]}, "bindings.0.name: Field required"),
    ({"report_version": 0}, "report_version: "),
])
def test_a_malformed_report_says_where_never_what(body: object, where: str) -> None:
    with pytest.raises(ReportError) as e:
        parse_report(body)
    assert where in str(e.value) and not e.value.newer_version
    assert "sk-live" not in str(e.value) and e.value.__cause__ is None  # not chained to the ValidationError


async def _serve(body: bytes) -> tuple[web.AppRunner, str]:
    async def status(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/admin/status", status)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.mark.parametrize(("body", "reason", "text"), [
    (b'{"configured": true, "bindings": [{"name": 3, "tiers": [{"tier": "sk-live-x"}]}]}', "Rejected",
     "GET /admin/status: unreadable report: bindings.0.name: "),
    (b'{"configured": true, "report_version": 7}', "SchemaMismatch", "report_version 7 is newer"),
    (b'["not", "an", "object"]', "Rejected", "did not answer a JSON object"),
])
async def test_an_unreadable_report_is_a_problem_of_that_pod_not_an_exception(body: bytes, reason: str, text: str) -> None:
    import aiohttp

    runner, url = await _serve(body)
    pod = PodInfo("ns", "p-0", "u", {}, "Running", "127.0.0.1", url, "u|1")
    try:
        async with aiohttp.ClientSession() as session:
            report, problem = await get_status(session, pod, url, "token", AdminTimeouts(1.0, 2.0))
    finally:
        await runner.cleanup()
    assert report is None and problem is not None
    assert (problem.pod, problem.reason) == ("p-0", reason) and text in problem.message
    assert "sk-live" not in problem.message


def test_the_state_names_are_defined_once() -> None:
    assert TIER_STATES == ("closed", "open", "half-open", "rate-limited", "disabled")
    assert FAILURE_CLASSES == ("transient", "rate-limited", "permanent")
    assert breaker.STATES == metrics.BREAKER_STATES == TIER_STATES
    assert {s.value for s in breaker.State} == set(TIER_STATES) - {"rate-limited"}  # rate-limited is an overlay
    assert (breaker.TRANSIENT, breaker.RATE_LIMITED, breaker.PERMANENT) == FAILURE_CLASSES
    assert typing.get_args(api_status.BreakerState) == (*TIER_STATES, "unknown")
    assert typing.get_args(api_status.FailureClass) == FAILURE_CLASSES
    assert SidecarReport().report_version == REPORT_VERSION


def test_keys_of_a_several_key_tier_are_reported_by_index_and_an_unknown_key_state_is_not_guessed() -> None:
    from switchyard.sidecar.contract.config import CompiledKey
    from switchyard.sidecar.contract.report import KeyState

    keyed = tier(0).model_copy(update={"keys": [
        CompiledKey(index=0, credential="sk-not-in-any-report"),  # type: ignore[arg-type]
        CompiledKey(index=1, problem="SecretKeyMissing: Secret k has no key b"),
    ]})
    rt = Runtime()
    b = CompiledBinding(name="b", aliases=["b"], tiers=[keyed, tier(1)])
    rt.install(CompiledConfig(bindings=[b]).with_version())
    body = status_report(rt).to_wire()
    tiers = body["bindings"][0]["tiers"]
    assert tiers[0]["keys"] == [{"index": 0, "state": "usable"},
                                {"index": 1, "state": "unresolvable", "problem": "SecretKeyMissing: Secret k has no key b"}]
    assert "keys" not in tiers[1]  # a one-key tier: the report as before
    assert "sk-not-in-any-report" not in orjson.dumps(body).decode()
    tiers[0]["keys"][0]["state"] = "sleeping"
    read = parse_report(body)
    assert [k.state for k in read.bindings[0].tiers[0].keys] == [None, KeyState.UNRESOLVABLE]
