"""The limiter's counters (routing/limits.py): windows, shares, callers, Retry-After. Pure."""

from __future__ import annotations

import pytest

from switchyard.sidecar.contract.config import CompiledBinding, CompiledLimits, CompiledRateLimits
from switchyard.sidecar.routing.limits import DAY, LimitBoard, Minute

T0 = 1_700_000_040.0  # a UTC minute boundary (divisible by 60)


def bl(pods: int = 1, **kw: object):
    board = LimitBoard(clock=lambda: T0)
    b = CompiledBinding(name="b", aliases=["b"], limits=CompiledLimits(**kw))  # type: ignore[arg-type]
    board.share("default", {"b": pods})
    board.install([b])
    return board.get(b)


def test_requests_per_minute_admits_the_limit_then_refuses_with_the_wait() -> None:
    lim = bl(requests_per_minute=3)
    assert [lim.admit("x", T0 + i) for i in range(3)] == [None, None, None]
    r = lim.admit("x", T0 + 10)
    assert r is not None and r.limit == "requestsPerMinute" and r.caller is None and r.fleet_limit == 3
    # This minute is full: the next minute starts in 50 s, and then the weighted previous
    # minute (3 * (1 - f)) must leave room for one: f = 1/3 of a minute more.
    assert r.wait == pytest.approx(50 + 20)
    assert lim.admit("x", T0 + 60 + 19) is not None
    assert lim.admit("x", T0 + 60 + 20.5) is None


def test_a_refused_request_is_not_counted() -> None:
    lim = bl(requests_per_minute=1)
    assert lim.admit("x", T0) is None
    for _ in range(5):
        assert lim.admit("x", T0 + 1) is not None
    assert lim.total.requests.cur == 1


def test_sliding_window_smooths_the_minute_boundary() -> None:
    w = Minute()
    for _ in range(10):
        w.add(T0 + 59, 1)
    # 1 s into the next minute, the previous minute still weighs 10 * 59/60: no room for a 10 cap.
    assert w.wait(T0 + 61, 10) > 0
    assert w.wait(T0 + 61, 20) == 0
    assert w.wait(T0 + 120 + 1, 10) == 0  # two minutes on: forgotten


def test_tokens_are_enforced_on_the_next_request() -> None:
    lim = bl(tokens_per_minute=100)
    assert lim.admit("x", T0) is None
    lim.spend("x", 250, T0 + 1)  # the answer went over: it was served
    r = lim.admit("x", T0 + 2)
    assert r is not None and r.limit == "tokensPerMinute"


def test_daily_budget_resets_at_utc_midnight() -> None:
    lim = bl(tokens_per_day=1000)
    day_start = T0 - T0 % DAY
    lim.spend("x", 1000, T0)
    r = lim.admit("x", T0 + 5)
    assert r is not None and r.budget and r.wait == pytest.approx(day_start + DAY - (T0 + 5))
    assert lim.admit("x", day_start + DAY + 1) is None


def test_share_across_pods_is_limit_over_pods_never_below_one() -> None:
    lim = bl(pods=3, requests_per_minute=30)
    assert sum(lim.admit("x", T0 + i * 0.1) is None for i in range(20)) == 10
    tiny = bl(pods=50, requests_per_minute=30)
    assert tiny.caps[0] == 1.0 and tiny.admit("x", T0) is None


def test_per_caller_limits_each_caller_and_the_binding_stays_the_cap() -> None:
    lim = bl(requests_per_minute=5, per_caller=CompiledRateLimits(requests_per_minute=2))
    assert [lim.admit("codex", T0) for _ in range(2)] == [None, None]
    r = lim.admit("codex", T0)
    assert r is not None and r.caller == "codex" and r.label == "perCaller.requestsPerMinute"
    assert [lim.admit("claude-code", T0) for _ in range(2)] == [None, None]
    assert lim.admit("unknown", T0) is None
    r = lim.admit("other", T0)  # the binding's 5 are spent
    assert r is not None and r.caller is None and r.label == "requestsPerMinute"


def test_counters_survive_a_new_config_and_a_new_share() -> None:
    board = LimitBoard(clock=lambda: T0)
    b1 = CompiledBinding(name="b", aliases=["b"], limits=CompiledLimits(requests_per_minute=4))
    board.install([b1])
    lim = board.get(b1)
    for _ in range(4):
        assert lim.admit("x", T0) is None
    b2 = CompiledBinding(name="b", aliases=["b", "c"], limits=CompiledLimits(requests_per_minute=4))
    board.install([b2])
    assert board.get(b2) is lim and lim.admit("x", T0) is not None
    board.share("default", {"b": 2})
    assert lim.caps[0] == 2.0
    board.install([CompiledBinding(name="b", aliases=["b"])])  # limits removed: nothing kept
    assert board.report(CompiledBinding(name="b", aliases=["b"])) is None


def test_report_rolls_to_now_and_carries_limit_share_and_use() -> None:
    lim = bl(pods=2, requests_per_minute=30, tokens_per_day=1000)
    lim.admit("x", T0 + 1)
    lim.spend("x", 40, T0 + 2)
    rep = lim.report(T0 + 3)
    assert rep.pods == 2
    rpm = rep.windows["requestsPerMinute"]
    assert (rpm.limit, rpm.share, rpm.used, rpm.window_start, rpm.window_seconds) == (30, 15.0, 1, T0, 60.0)
    assert rep.windows["tokensPerDay"].used == 40
    assert lim.report(T0 + 65).windows["requestsPerMinute"].used == 0  # a new minute


def test_without_limits_the_report_and_the_bundle_keep_their_old_shape() -> None:
    """Older operators and sidecars read these (extra fields refused by a sidecar): a
    namespace without limits must produce exactly the bytes it did before."""
    from switchyard.sidecar.contract.delivery import ConfigBundle
    from switchyard.sidecar.contract.report import ReportedBinding, SidecarReport, parse_report

    plain = SidecarReport(configured=True, version="v", bindings=[ReportedBinding(name="b")]).to_wire()
    assert "limits" not in plain["bindings"][0]
    assert b'"pods"' not in ConfigBundle(namespace="ns").to_file()
    lim = bl(pods=3, requests_per_minute=30)
    lim.admit("x", T0)
    wire = SidecarReport(configured=True, version="v", bindings=[ReportedBinding(name="b", limits=lim.report(T0))]).to_wire()
    back = parse_report(wire).bindings[0].limits
    assert back is not None and back.pods == 3 and back.windows["requestsPerMinute"].used == 1
    assert ConfigBundle.from_file(ConfigBundle(namespace="ns", pods={"b": 3}).to_file()).pods == {"b": 3}


def test_retry_after_waits_for_the_previous_minute_to_fade() -> None:
    w = Minute()
    w.add(T0 - 1, 10)  # a full previous minute
    # 3 s in: 10 * 0.95 + 0 + 1 > 10; it fits once 10 * (1 - f) <= 9, f = 0.1: at 6 s.
    assert w.wait(T0 + 3, 10) == pytest.approx(3.0)
    assert w.wait(T0 + 6, 10) == 0.0
    # Tokens far over the cap this minute: the rest of it, then until 250 * (1 - f) <= 99.
    t = Minute()
    t.add(T0 + 10, 250)
    assert t.wait(T0 + 10, 100) == pytest.approx(50 + 60 * (1 - 99 / 250))
