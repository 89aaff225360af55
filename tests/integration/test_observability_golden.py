"""What a sidecar tells about the traffic it served: its ``/metrics`` exposition and its
request log lines, compared with goldens recorded from the prometheus_client/logging
implementation (tests/golden/observability/).

One scenario drives the traffic every family sees: successes in each ingress protocol
(tokens, callers), a 429 fallback, streams (whole and broken after content), a capability
rejection, degraded fields, every tier failing, a breaker that opens, is probed and
closes again, config pushes (applied, unchanged, rejected), and a priced answer with
cache reads and writes (usage tokens by model and caller, cost; the lines' usage fields).
The families and line fields added since the recording (switchyard_usage_tokens_total,
switchyard_cost_total, the cache_write kind, the request line's token and cost fields)
were added to the goldens deliberately (docs/usage-and-cost.md).

Normalised, because they are not deterministic: latency values (histogram buckets and
sums; what is kept is checked for consistency: cumulative buckets never decrease, +Inf
equals _count, each _sum within what the buckets allow), the config version hash and
the last-update time (the simulator's port is in the config), and in the log lines the
timestamp and durations. Everything else (family order, HELP, TYPE, series, label
values, counts, sample order) must be byte-identical.

Set SWITCHYARD_UPDATE_GOLDEN=1 to (re)write the goldens, then review the diff.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness import CLIENT_KEY, KEYS, GatewayFactory, binding, load, sources
from switchyard import logs as switchyard_logs
from switchyard.compiler import compile_config
from switchyard.sidecar.pipeline.exchange import request_log
from switchyard.simulator import Reply, Simulator, Usage

GOLDEN = Path(__file__).parent.parent / "golden" / "observability"
UPDATE = os.environ.get("SWITCHYARD_UPDATE_GOLDEN") == "1"

STRICT = """apiVersion: switchyard.dev/v1alpha1
kind: CapabilityProfile
metadata: {name: strict-seed}
spec:
  protocol: openai-chat
  features: {seed: false}
  onUnsupported: {seed: reject}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: strict}
spec:
  provider: openai-compatible
  baseURL: "%s"
  defaultModel: strict-model
  capabilityProfileRef: {name: strict-seed}
  credentialRef: {name: keys, key: backup}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: priced}
spec:
  provider: anthropic
  baseURL: "%s"
  defaultModel: priced-model
  credentialRef: {name: keys, key: claude}
  pricing:
  - {model: priced-model, currency: EUR, inputPerMillion: 3, outputPerMillion: 15, cachedInputPerMillion: 0.3, cacheWritePerMillion: 3.75}
---
"""

BINDINGS = (
    binding("helper", "primary", "backup", "claude", extra="  breaker: {consecutiveFailures: 2, cooldownSeconds: 30}")
    + "---\n"
    + binding("writer", "claude", "gem", extra="  aliases: [writer]")
    + "---\n"
    + binding("strict", "strict", "claude", extra="  aliases: [strict]")
    + "---\n"
    + binding("priced", "priced", extra="  aliases: [priced]")
)
HI = [{"role": "user", "content": "hi"}]
ANTHROPIC = {"anthropic-version": "2023-06-01"}


async def _post(url: str, body: dict, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
        async with s.post(url, json=body, headers=headers or {}) as r:
            return r.status, dict(r.headers), await r.text()


async def _request(method: str, url: str, data: bytes | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
        async with s.request(method, url, data=data, headers={"Content-Type": "application/json"}) as r:
            return r.status, await r.text()


async def drive(gateway: GatewayFactory, sim: Simulator) -> tuple[Any, str]:
    """The scenario; returns the gateway and its ``/metrics`` text at the end."""
    gw = await gateway(STRICT % (sim.base_url("backup"), sim.base_url("claude")) + BINDINGS)
    api = gw.api
    chat = api + "/v1/chat/completions"
    # successes: OpenAI SDK (caller openai-sdk), raw HTTP (unknown), Anthropic and Gemini ingress
    raw = await gw.openai().chat.completions.with_raw_response.create(model="helper", messages=HI)
    assert raw.headers["x-switchyard-tier"] == "0"
    assert (await _post(chat, {"model": "helper", "messages": HI}))[0] == 200
    status, _, _ = await _post(api + "/v1/messages", {"model": "writer", "max_tokens": 20, "messages": HI}, ANTHROPIC)
    assert status == 200
    status, _, _ = await _post(api + "/v1beta/models/writer:generateContent", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
                               {"x-goog-api-key": CLIENT_KEY})
    assert status == 200
    # a 429 falls back to tier 1; the tier stays rate-limited for 5 s
    sim.fault("primary", "429", retry_after=5)
    status, headers, _ = await _post(chat, {"model": "helper", "messages": HI})
    assert status == 200 and headers["x-switchyard-tier"] == "1"
    status, headers, _ = await _post(chat, {"model": "helper", "messages": HI, "stream": True, "stream_options": {"include_usage": True}})
    assert status == 200 and headers["x-switchyard-fallback-reason"].startswith("tier0=rate-limited")
    gw.clock.advance(6)
    # a stream served by the primary, then one broken after content
    status, headers, _ = await _post(chat, {"model": "helper", "messages": HI, "stream": True})
    assert status == 200 and headers["x-switchyard-tier"] == "0"
    sim.configure("primary", chunks=6)
    sim.fault("primary", "reset", after_chunks=2)
    status, _, text = await _post(chat, {"model": "helper", "messages": HI, "stream": True})
    assert status == 200 and "[DONE]" not in text
    # cross-protocol with degraded fields (Claude serves an OpenAI request)
    body = {"model": "writer", "messages": HI, "logprobs": True, "top_logprobs": 2, "presence_penalty": 0.5}
    status, headers, _ = await _post(chat, body)
    assert status == 200 and "logprobs=strip" in headers["x-switchyard-degraded"]
    # a capability rejection, an unknown model, a bad body
    status, _, _ = await _post(chat, {"model": "strict", "messages": HI, "seed": 7})
    assert status == 400
    assert (await _post(chat, {"model": "nobody", "messages": HI}))[0] == 404
    assert (await _post(chat, {"model": "helper", "messages": "not a list"}))[0] == 400
    # every tier fails: tier -1
    for name in ("primary", "backup", "claude"):
        sim.fault(name, "500")
    status, _, _ = await _post(chat, {"model": "helper", "messages": HI}, {"x-switchyard-caller": "batch-job"})
    assert status >= 500
    # the breaker: the broken stream and the 500 opened tier 0; it is passed over, checked, and a trial closes it
    status, headers, _ = await _post(chat, {"model": "helper", "messages": HI})
    assert headers["x-switchyard-tier"] == "1" and headers["x-switchyard-fallback-reason"].startswith("tier0=breaker-open")
    gw.clock.advance(31)
    assert await gw.runtime.prober.run_due() == 1
    status, headers, _ = await _post(chat, {"model": "helper", "messages": HI})
    assert headers["x-switchyard-tier"] == "0"
    # tiers 0 and 1 open again; tier 1's check fails (its 503 holds for the check too)
    sim.fault("backup", "503", persistent=True, endpoint="any")
    sim.fault("primary", "503", times=2)
    for _ in range(2):
        status, headers, _ = await _post(chat, {"model": "helper", "messages": HI, "stream": True})
        assert headers["x-switchyard-tier"] == "2"
    gw.clock.advance(31)
    assert await gw.runtime.prober.run_due() == 2
    sim.clear_faults()
    # config pushes: applied (one more binding), unchanged, rejected
    text = sources(sim) + "\n---\n" + STRICT % (sim.base_url("backup"), sim.base_url("claude")) + BINDINGS + "---\n" + binding("extra", "gem")
    config = compile_config(load(text)).config
    assert (await _request("PUT", gw.admin + "/admin/config", config.to_wire()))[0] == 200
    assert (await _request("PUT", gw.admin + "/admin/config", config.to_wire()))[0] == 200
    assert (await _request("PUT", gw.admin + "/admin/config", b"{"))[0] == 400
    status, _, _ = await _post(api + "/v1beta/models/extra:generateContent", {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert status == 200
    # usage with cache reads and writes, priced (in EUR, by the source's pricing)
    sim.script("claude", Reply(text="cached", usage=Usage(input_tokens=100, output_tokens=50, cached_tokens=2000, cache_write_tokens=300)))
    status, _, _ = await _post(api + "/v1/messages", {"model": "priced", "max_tokens": 20, "messages": HI}, ANTHROPIC)
    assert status == 200
    status, text = await _request("GET", gw.admin + "/metrics")
    assert status == 200
    return gw, text


# ------------------------------------------------------------------ the exposition

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def _labels(text: str | None) -> dict[str, str]:
    return dict(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', text or ""))


def normalise_exposition(text: str) -> str:
    """Latency values out, after checking what remains of them is consistent."""
    histograms = {m.group(1) for m in re.finditer(r"^# TYPE (\S+) histogram$", text, re.M)}
    series: dict[tuple[str, str], dict[str, Any]] = {}
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            out.append(line)
            continue
        m = _SAMPLE.match(line)
        assert m, line
        name, labels, value = m.groups()
        family = next((h for h in histograms if name in (h + "_bucket", h + "_count", h + "_sum")), None)
        if family is not None:
            lab = _labels(labels)
            le = lab.pop("le", None)
            key = (family, json.dumps(sorted(lab.items())))
            s = series.setdefault(key, {"buckets": [], "count": None, "sum": None})
            if name.endswith("_bucket"):
                s["buckets"].append((float(le), float(value)))  # type: ignore[arg-type]
                out.append(f"{name}{labels} <n>")
            elif name.endswith("_count"):
                s["count"] = float(value)
                out.append(line)
            else:
                s["sum"] = float(value)
                out.append(f"{name}{labels} <sum>")
            continue
        if name == "switchyard_config_info":
            line = re.sub(r'(?<![a-z_])version="[0-9a-f]+"', 'version="<version>"', line)
        if name == "switchyard_config_last_update_timestamp_seconds":
            line = f"{name} <time>"
        out.append(line)
    for (family, lab), s in series.items():
        bounds = [b for b, _ in s["buckets"]]
        counts = [c for _, c in s["buckets"]]
        assert bounds == sorted(bounds) and bounds[-1] == math.inf, (family, lab)
        assert all(a <= b for a, b in zip(counts, counts[1:])), f"{family} {lab}: buckets decrease {counts}"
        assert counts[-1] == s["count"] and s["count"] > 0, (family, lab, counts, s["count"])
        # each observation lies in (previous bound, bound]: the sum lies between those bounds' sums
        low = high = 0.0
        previous, below = 0.0, 0.0
        for bound, cumulative in s["buckets"]:
            n = cumulative - below
            low += n * previous
            high += n * bound if n else 0.0
            previous, below = bound, cumulative
        assert low <= s["sum"] <= high, (family, lab, s["sum"], low, high)
    return "\n".join(out) + "\n"


def _compare(path: Path, got: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
    assert path.exists(), f"{path} missing (run with SWITCHYARD_UPDATE_GOLDEN=1 and review)"
    want = path.read_text()
    assert got == want, f"{path.name} differs (SWITCHYARD_UPDATE_GOLDEN=1 rewrites it; review the diff)"


# --------------------------------------------------------------------- log lines

_TS = re.compile(r'^\{"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",')
_MS = re.compile(r'"(duration_ms|ttft_ms)":(\d+(?:\.\d+)?)(?=[,}])')


def normalise_log(text: str) -> str:
    """The lines as written, byte for byte, but for the time and the durations (whose
    format is checked: the time to the millisecond in UTC, durations as JSON numbers)."""
    out = []
    for line in text.splitlines():
        json.loads(line)  # each line is one JSON object
        assert _TS.match(line), line
        line = _TS.sub('{"ts":"<ts>",', line)
        line = _MS.sub(lambda m: f'"{m.group(1)}":"<ms>"', line)
        out.append(line)
    return "\n".join(out) + "\n"


@contextlib.contextmanager
def logged(level: str = "info", stream: Any = None) -> Iterator[Any]:
    """The sidecar's logging exactly as ``switchyard sidecar --log-level info`` sets it up,
    into a buffer instead of stderr; the test's own logging is put back afterwards. Set
    up inside the test: pytest adds its capturing handlers when the test's call begins."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    buf = io.StringIO() if stream is None else stream
    switchyard_logs.setup(level, stream=buf)
    try:
        yield buf
    finally:
        request_log.flush()  # as the sidecar's stop does: request lines leave in batches
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


async def test_metrics_and_log_lines_match_the_goldens(gateway: GatewayFactory, sim: Simulator) -> None:
    with logged() as buf:
        assert request_log._direct() is not None  # the request lines are written by the dedicated writer
        gw, text = await drive(gateway, sim)
        await gw.runtime.prober.wait_idle()
    _compare(GOLDEN / "metrics.txt", normalise_exposition(text))
    lines = [line for line in buf.getvalue().splitlines() if '"switchyard.request"' in line]
    assert len(lines) == 19
    _compare(GOLDEN / "request-log.jsonl", normalise_log("\n".join(lines)))


async def test_the_exposition_has_no_created_series_and_no_zero_request_series(gateway: GatewayFactory, sim: Simulator) -> None:
    gw, text = await drive(gateway, sim)
    assert "_created" not in text
    for line in text.splitlines():
        if line.startswith(("switchyard_requests_total", "switchyard_upstream_attempts_total", "switchyard_fallbacks_total",
                            "switchyard_tokens_total", "switchyard_usage_tokens_total", "switchyard_probes_total",
                            "switchyard_breaker_transitions_total")):
            assert not line.endswith(" 0.0"), line
    # the registry answers single samples as before (tests and tools use get_sample_value)
    reg = gw.runtime.metrics.registry
    assert reg.get_sample_value("switchyard_upstream_attempts_total",
                                {"binding": "helper", "tier": "0", "source": "primary", "result": "429"}) == 1.0


# ------------------------------------------------------- the request log's switches


async def _one_request(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(binding("helper", "primary"))
    status, _, _ = await _post(gw.api + "/v1/chat/completions", {"model": "helper", "messages": HI},
                               {"Authorization": f"Bearer {CLIENT_KEY}"})
    assert status == 200


async def test_the_request_log_is_on_at_info_and_holds_no_key(gateway: GatewayFactory, sim: Simulator) -> None:
    with logged() as buf:
        await _one_request(gateway, sim)
    text = buf.getvalue()
    assert text.count('"msg":"request"') == 1
    assert CLIENT_KEY not in text and "Bearer" not in text and not any(k in text for k in KEYS.values())


@pytest.mark.parametrize("level", ["warning", "error"])
async def test_the_log_level_turns_the_request_log_off(gateway: GatewayFactory, sim: Simulator, level: str) -> None:
    with logged(level) as buf:
        await _one_request(gateway, sim)
        logging.getLogger("switchyard.test").error("still here")
    lines = buf.getvalue().splitlines()
    assert lines and not any('"msg":"request"' in line for line in lines)
    assert json.loads(lines[-1])["msg"] == "still here"


async def test_the_request_logger_level_alone_turns_it_off(gateway: GatewayFactory, sim: Simulator) -> None:
    request_logger = logging.getLogger("switchyard.request")
    with logged() as buf:
        request_logger.setLevel(logging.WARNING)
        try:
            await _one_request(gateway, sim)
        finally:
            request_logger.setLevel(logging.NOTSET)
    assert '"msg":"request"' not in buf.getvalue()


async def test_another_handler_on_the_root_logger_gets_the_request_records(gateway: GatewayFactory, sim: Simulator) -> None:
    """Logging configured beyond ``setup`` (a handler of one's own) still sees each
    request, with its fields under ``switchyard`` as before."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    with logged() as buf:
        logging.getLogger().addHandler(Keep())
        assert request_log._direct() is None  # through logging, to both handlers
        await _one_request(gateway, sim)
    [record] = [r for r in seen if r.name == "switchyard.request"]
    assert record.getMessage() == "request" and record.switchyard["outcome"] == "success"  # type: ignore[attr-defined]
    assert buf.getvalue().count('"msg":"request"') == 1


class _Broken(io.StringIO):
    def write(self, s: str) -> int:
        raise OSError(28, "No space left on device")


class _Closed(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.close()


@pytest.mark.parametrize("stream", [_Broken, _Closed])
async def test_a_destination_that_fails_never_fails_a_request(gateway: GatewayFactory, sim: Simulator, stream: type,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    with logged(stream=stream()):
        gw = await gateway(binding("helper", "primary"))
        for body in ({"model": "helper", "messages": HI}, {"model": "helper", "messages": HI, "stream": True}):
            status, headers, text = await _post(gw.api + "/v1/chat/completions", body)
            assert status == 200 and headers["x-switchyard-tier"] == "0" and text
        status, _, _ = await _post(gw.api + "/v1/chat/completions", {"model": "nobody", "messages": HI})
        assert status == 404
