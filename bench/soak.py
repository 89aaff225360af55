"""Soak with faults: the real sidecar under sustained mixed traffic while its upstreams flap
and its config is replaced, and every answer classified. Nothing may be lost.

    python bench/soak.py                          # 60 s, 16 concurrent clients
    python bench/soak.py --duration 600 --concurrency 32 --json soak.json

One command, bounded in time (``--duration``) and requests (``--max-requests``), loopback
only, every port chosen by the OS:

- the simulated providers (``switchyard.simulator``: two OpenAI-style mounts, one
  Anthropic, one Gemini) run in this process;
- the gateway is the real thing, ``switchyard run -f <generated manifests>``, as a
  subprocess: three bindings whose chains cross protocols, short breaker cooldowns;
- ``--concurrency`` clients send requests in the OpenAI Chat, Responses, Anthropic
  Messages and Gemini shapes, streaming and not, a few of them malformed on purpose;
- every ``--fault-every`` seconds each upstream gets a new fault through the simulator's
  control API (``POST /_sim/{mount}/faults``): 429 storms with Retry-After, 5xx bursts,
  resets mid-stream, hangs, empty 200s, malformed JSON, in-stream error events, slow
  streams, or health;
- every ``--config-every`` seconds the config is replaced by a changed but equivalent one,
  alternately with ``PUT /admin/config`` and with SIGHUP after editing the manifests.

Each answer is classified (``classify``): **content** (a 200 with an answer, a stream with
content and its clean end marker), **protocol error** (a status with the error body of
the client's protocol; a stream ending with its protocol's error event and no clean end
marker), or **LOST**: no answer, a non-protocol body, a 200 without content, a stream cut
without an error event, a clean end marker after an error. The run fails (exit 1) when
anything is lost or the sidecar's RSS grew beyond ``--rss-bound-mb`` after warm-up.

At the end: SIGTERM, and the sidecar must drain and exit 0 within its deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

REPO = Path(__file__).resolve().parents[1]
SWITCHYARD = Path(sys.executable).with_name("switchyard")

KEYS = {"primary": "sk-soak-primary-0d1e", "backup": "sk-soak-backup-77aa", "claude": "sk-ant-soak-c1a0", "gem": "AIza-soak-g3m1"}
ADMIN_TOKEN = "soak-admin-token-5e1f"

# Faults an upstream cycles through: (name, control API body). Persistent schedules
# (rate=/every=) so a fault holds until the next change.
FAULTS: list[tuple[str, dict[str, Any] | None]] = [
    ("healthy", None),
    ("429-storm", {"spec": "429:rate=0.8:seed=1:retry-after=1"}),
    ("5xx-burst", {"spec": "503:every=2"}),
    ("500s", {"spec": "500:rate=0.5:seed=2"}),
    ("reset-mid-stream", {"spec": "reset:after-chunks=1:rate=0.5:seed=3"}),
    ("reset-before-head", {"spec": "reset:rate=0.3:seed=4"}),
    ("hang", {"spec": "hang:max-seconds=3:rate=0.3:seed=5"}),
    ("hang-mid-stream", {"spec": "hang:after-chunks=1:max-seconds=3:rate=0.3:seed=6"}),
    ("empty-200", {"spec": "empty:rate=0.5:seed=7"}),
    ("zero-200", {"spec": "empty:mode=zero:rate=0.5:seed=8"}),
    ("malformed", {"spec": "malformed:after-chunks=1:rate=0.5:seed=9"}),
    ("error-event", {"spec": "error-event:after-chunks=1:rate=0.5:seed=10"}),
    ("slow", {"spec": "slow:chunk-delay-ms=40:rate=0.5:seed=11"}),
]

INGRESSES = ("openai-chat", "openai-responses", "anthropic-messages", "gemini")
ALIASES = ("chat", "claude-chain", "gem-chain")


# ====================================================================== manifests


def manifests(sim_base: dict[str, str], generation: int) -> str:
    """Sources on the simulator, three bindings with cross-protocol chains. ``generation``
    changes a harmless header: a new config version, the same tiers (breakers survive)."""
    timeouts = {"connectSeconds": 1, "firstByteSeconds": 1.5, "totalSeconds": 6}
    header = {"x-soak-generation": str(generation)}
    sources = [
        ("primary", "openai-compatible", "primary-model", {"capabilityProfileRef": {"name": "builtin-openai"}}),
        ("backup", "openai-compatible", "backup-model", {"capabilityProfileRef": {"name": "builtin-openai"}}),
        ("claude", "anthropic", "claude-model", {}),
        ("gem", "gemini", "gem-model", {}),
    ]
    docs: list[dict[str, Any]] = []
    for name, provider, model, extra in sources:
        docs.append({
            "apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelSource", "metadata": {"name": name},
            "spec": {"provider": provider, "baseURL": sim_base[name], "defaultModel": model,
                     "credentialRef": {"name": "keys", "key": name}, "timeouts": timeouts, "headers": header, **extra},
        })
    breaker = {"consecutiveFailures": 3, "cooldownSeconds": 1, "maxCooldownSeconds": 4, "maxRetryAfterSeconds": 2}
    chains = {"chat": ["primary", "backup", "claude"], "claude-chain": ["claude", "primary", "gem"], "gem-chain": ["gem", "claude", "backup"]}
    for name, chain in chains.items():
        docs.append({
            "apiVersion": "switchyard.dev/v1alpha1", "kind": "AssistantBinding", "metadata": {"name": name},
            "spec": {"primary": {"sourceRef": {"name": chain[0]}}, "fallbacks": [{"sourceRef": {"name": s}} for s in chain[1:]],
                     "breaker": breaker},
        })
    docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"}, "stringData": dict(KEYS)})
    return yaml.safe_dump_all(docs, sort_keys=False)


def compiled_wire(text: str) -> bytes:
    """What the operator would push for these manifests."""
    from switchyard.api.manifests import ResourceSet, parse_document
    from switchyard.compiler import compile_config

    rs = ResourceSet()
    for doc in yaml.safe_load_all(text):
        r, errors = parse_document(doc)
        assert r is not None and not errors, errors
        {"ModelSource": rs.sources, "AssistantBinding": rs.bindings, "Secret": rs.secrets}[r.kind].append(r)
    return compile_config(rs).config.to_wire()


# ====================================================================== requests


@dataclass
class Call:
    ingress: str
    stream: bool
    alias: str
    bad: bool = False  # a malformed body on purpose: a 4xx protocol error is the right answer


def build(call: Call, api: str, rng: random.Random) -> tuple[str, dict[str, str], bytes]:
    text = f"soak {rng.randrange(1_000_000)}: say something"
    headers = {"Content-Type": "application/json", "Authorization": "Bearer client-key-not-forwarded"}
    if call.ingress == "openai-chat":
        body: Any = {"model": call.alias, "messages": [{"role": "user", "content": text}], "stream": call.stream, "max_tokens": 64}
        if call.stream and rng.random() < 0.5:
            body["stream_options"] = {"include_usage": True}
        url = api + "/v1/chat/completions"
    elif call.ingress == "openai-responses":
        body = {"model": call.alias, "input": text, "stream": call.stream, "max_output_tokens": 64}
        url = api + "/v1/responses"
    elif call.ingress == "anthropic-messages":
        body = {"model": call.alias, "max_tokens": 64, "messages": [{"role": "user", "content": text}], "stream": call.stream}
        headers["anthropic-version"] = "2023-06-01"
        url = api + "/v1/messages"
    else:
        body = {"contents": [{"role": "user", "parts": [{"text": text}]}], "generationConfig": {"maxOutputTokens": 64}}
        method = "streamGenerateContent?alt=sse" if call.stream else "generateContent"
        url = f"{api}/v1beta/models/{call.alias}:{method}"
        headers["x-goog-api-key"] = "client-key-not-forwarded"
    raw = orjson.dumps(body)
    if call.bad:
        raw = rng.choice([raw[: len(raw) // 2], b"[1, 2]", b'{"model": 3}', b"\xff\xfe not utf-8", b"{" * 300 + b"}" * 300])
    return url, headers, raw


# ====================================================================== classification

CONTENT, PROTOCOL_ERROR, LOST = "content", "protocol-error", "lost"


def error_body_ok(ingress: str, status: int, body: bytes) -> bool:
    """A non-200 answer is well formed when it is the client protocol's error object."""
    if not 400 <= status <= 599:
        return False
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(obj, dict):
        return False
    err = obj.get("error")
    if ingress == "anthropic-messages":
        return obj.get("type") == "error" and isinstance(err, dict) and isinstance(err.get("type"), str) and isinstance(err.get("message"), str)
    if ingress == "gemini":
        return isinstance(err, dict) and err.get("code") == status and isinstance(err.get("message"), str) and isinstance(err.get("status"), str)
    return isinstance(err, dict) and isinstance(err.get("message"), str) and isinstance(err.get("type"), str)


def whole_has_content(ingress: str, obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    if ingress == "openai-chat":
        msg = ((obj.get("choices") or [{}])[0] or {}).get("message") or {}
        return bool(msg.get("content") or msg.get("tool_calls"))
    if ingress == "openai-responses":
        for item in obj.get("output") or []:
            if item.get("type") == "function_call":
                return True
            if item.get("type") == "message" and any(c.get("text") for c in item.get("content") or []):
                return True
        return False
    if ingress == "anthropic-messages":
        return any((b.get("type") == "text" and b.get("text")) or b.get("type") == "tool_use" for b in obj.get("content") or [])
    cands = obj.get("candidates") or []
    parts = ((cands[0] if cands else {}).get("content") or {}).get("parts") or []
    return any(p.get("text") or p.get("functionCall") for p in parts)


def sse_events(raw: bytes) -> tuple[list[tuple[str | None, str]], bool]:
    """(event, data) pairs, and whether the bytes ended on an event boundary."""
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n")
    complete = text.endswith("\n\n") or not text
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        out.append((event, "\n".join(data)))
    return out, complete


def classify_stream(ingress: str, raw: bytes) -> tuple[str, str]:
    """(class, why) of a 200 streamed answer."""
    events, complete = sse_events(raw)
    content = clean = errored = False
    clean_after_error = False
    for event, data in events:
        try:
            obj: Any = orjson.loads(data) if data and data != "[DONE]" else None
        except orjson.JSONDecodeError:
            return LOST, f"non-JSON data in the stream: {data[:60]!r}"
        is_error = is_clean = False
        if ingress == "openai-chat":
            is_clean = data == "[DONE]"
            is_error = isinstance(obj, dict) and "error" in obj
            if isinstance(obj, dict):
                for c in obj.get("choices") or []:
                    d = c.get("delta") or {}
                    content = content or bool(d.get("content") or d.get("tool_calls") or d.get("reasoning_content"))
        elif ingress == "openai-responses":
            kind = (obj or {}).get("type") if isinstance(obj, dict) else None
            is_clean = kind in ("response.completed", "response.incomplete")
            is_error = kind in ("error", "response.failed")
            content = content or (kind in ("response.output_text.delta", "response.function_call_arguments.delta") and bool(obj.get("delta")))
        elif ingress == "anthropic-messages":
            is_clean = event == "message_stop"
            is_error = event == "error"
            if event == "content_block_delta" and isinstance(obj, dict):
                d = obj.get("delta") or {}
                content = content or bool(d.get("text") or d.get("partial_json") or d.get("thinking"))
            content = content or (event == "content_block_start" and ((obj or {}).get("content_block") or {}).get("type") == "tool_use")
        else:
            is_error = isinstance(obj, dict) and "error" in obj
            if isinstance(obj, dict):
                for c in obj.get("candidates") or []:
                    content = content or any(p.get("text") or p.get("functionCall") for p in (c.get("content") or {}).get("parts") or [])
                    is_clean = is_clean or bool(c.get("finishReason"))
        if is_error:
            errored = True
        if is_clean:
            clean = True
            clean_after_error = clean_after_error or errored
    if clean_after_error:
        return LOST, "a clean end marker after an error event"
    if errored:
        return (PROTOCOL_ERROR, "error event") if not clean else (LOST, "error event and a clean end")
    if not complete:
        return LOST, "stream cut in the middle of an event"
    if not clean:
        return LOST, "stream ended without its end marker or an error event"
    if not content:
        return LOST, "a clean stream without content"
    return CONTENT, "ok"


def classify(call: Call, status: int, content_type: str, raw: bytes) -> tuple[str, str]:
    if status == 200:
        if call.bad:
            return LOST, "a malformed request answered 200"
        if call.stream:
            if "json" in content_type:
                return LOST, "a 200 JSON body to a stream request"
            return classify_stream(call.ingress, raw)
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return LOST, "a 200 whose body is not JSON"
        return (CONTENT, "ok") if whole_has_content(call.ingress, obj) else (LOST, "a 200 without content")
    if error_body_ok(call.ingress, status, raw):
        return PROTOCOL_ERROR, str(status)
    return LOST, f"HTTP {status} without the protocol's error body: {raw[:80]!r}"


# ====================================================================== the sidecar process


class SidecarProcess:
    """``switchyard run`` (or ``sidecar``) as a child process on OS-chosen ports."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.proc: asyncio.subprocess.Process | None = None
        self.api = self.admin = ""
        self.lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 30.0) -> SidecarProcess:
        self.proc = await asyncio.create_subprocess_exec(
            str(SWITCHYARD), *self.args, "--port", "0", "--admin-port", "0",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=self.env,
        )
        pattern = re.compile(r"(?:on http://|API on )[\d.]+:(\d+).*?(?:admin http://|admin on )[\d.]+:(\d+)")
        assert self.proc.stderr is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.proc.stderr.readline()).decode(errors="replace")
                if not line:
                    raise RuntimeError("switchyard exited at start:\n" + "".join(self.lines))
                self.lines.append(line)
                m = pattern.search(line)
                if m:
                    self.api, self.admin = f"http://127.0.0.1:{m.group(1)}", f"http://127.0.0.1:{m.group(2)}"
                    break
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.lines.append(line.decode(errors="replace"))
            if len(self.lines) > 5000:
                del self.lines[:1000]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_mb(self) -> float:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 30.0) -> int | None:
        """Wait for an exit already asked for (a second SIGTERM could land after the
        process removed its handlers, and kill it): the exit code, None on timeout."""
        assert self.proc is not None
        try:
            async with asyncio.timeout(timeout):
                return await self.proc.wait()
        except TimeoutError:
            return None

    async def stop(self, timeout: float = 30.0) -> tuple[int | None, float]:
        """SIGTERM and wait: (exit code or None if it had to be killed, seconds)."""
        if self.proc is None or self.proc.returncode is not None:
            return (self.proc.returncode if self.proc else None), 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                code: int | None = await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            code = None
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
        return code, time.monotonic() - t0


# ====================================================================== the run


@dataclass
class Result:
    sent: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    by_ingress: Counter[tuple[str, str]] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    lost: list[dict[str, Any]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    fallback_served: int = 0  # answered with content by a tier other than the primary
    faults_applied: Counter[str] = field(default_factory=Counter)
    config_swaps: Counter[str] = field(default_factory=Counter)
    transitions: dict[str, float] = field(default_factory=dict)
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_bound_mb: float = 0.0
    duration_s: float = 0.0
    drain_exit: int | None = None
    drain_seconds: float = 0.0
    sidecar_errors: list[str] = field(default_factory=list)

    @property
    def lost_count(self) -> int:
        return self.classes[LOST]

    def ok(self) -> bool:
        return (self.lost_count == 0 and self.rss_end_mb - self.rss_start_mb <= self.rss_bound_mb
                and self.drain_exit == 0 and not self.sidecar_errors)

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(q * len(s)))] * 1000

    def summary(self) -> dict[str, Any]:
        return {
            "duration_s": round(self.duration_s, 1),
            "sent": self.sent,
            "content": self.classes[CONTENT],
            "content_from_a_fallback": self.fallback_served,
            "protocol_errors": self.classes[PROTOCOL_ERROR],
            "lost": self.lost_count,
            "by_ingress": {f"{i}/{c}": n for (i, c), n in sorted(self.by_ingress.items())},
            "statuses": dict(sorted(self.statuses.items())),
            "latency_ms": {"p50": round(self.pct(0.50), 1), "p99": round(self.pct(0.99), 1),
                           "mean": round(statistics.fmean(self.latencies) * 1000, 1) if self.latencies else None},
            "breaker_transitions": self.transitions,
            "faults_applied": dict(self.faults_applied),
            "config_swaps": dict(self.config_swaps),
            "rss_mb": {"start": round(self.rss_start_mb, 1), "end": round(self.rss_end_mb, 1),
                       "peak": round(self.rss_peak_mb, 1), "growth": round(self.rss_end_mb - self.rss_start_mb, 1),
                       "bound": self.rss_bound_mb},
            "drain": {"exit": self.drain_exit, "seconds": round(self.drain_seconds, 2)},
            "sidecar_errors": self.sidecar_errors[:5],
            "lost_examples": self.lost[:10],
        }


@dataclasses.dataclass
class Options:
    duration: float = 60.0
    max_requests: int = 1_000_000
    concurrency: int = 16
    fault_every: float = 2.0
    config_every: float = 3.0
    warmup: float = 5.0
    rss_bound_mb: float = 25.0
    bad_share: float = 0.03
    healthy_share: float = 0.4  # chance an upstream is healthy for a fault period
    stream_share: float = 0.6
    seed: int = 1
    request_timeout: float = 30.0
    quiet: bool = False


def _say(opts: Options, text: str) -> None:
    if not opts.quiet:
        print(text, file=sys.stderr, flush=True)


async def _metrics_transitions(session: aiohttp.ClientSession, admin: str) -> dict[str, float]:
    async with session.get(admin + "/metrics") as r:
        text = await r.text()
    out: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("switchyard_breaker_transitions_total{"):
            m = re.search(r'to_state="([^"]+)"', line)
            if m:
                out[m.group(1)] += float(line.rsplit(" ", 1)[1])
    return dict(out)


async def run(opts: Options) -> Result:
    from switchyard.simulator import Mount, Simulator

    res = Result(rss_bound_mb=opts.rss_bound_mb)
    rng = random.Random(opts.seed)
    mounts = [
        Mount("primary", flavour="openai", api_key=KEYS["primary"]),
        Mount("backup", flavour="openai", api_key=KEYS["backup"]),
        Mount("claude", flavour="anthropic", api_key=KEYS["claude"]),
        Mount("gem", flavour="gemini", api_key=KEYS["gem"]),
    ]
    with tempfile.TemporaryDirectory(prefix="switchyard-soak-") as tmp:
        folder = Path(tmp)
        async with Simulator(*mounts, port=0, chunks=6, record_limit=50, hang_max_seconds=5) as sim:
            base = {m.name: sim.base_url(m.name) for m in mounts}
            generation = 0
            (folder / "soak.yaml").write_text(manifests(base, generation))
            proc = await SidecarProcess(["run", "-f", str(folder), "--log-level", "warning"],
                                        {"SWITCHYARD_ADMIN_TOKEN": ADMIN_TOKEN}).start()
            _say(opts, f"soak: sidecar pid {proc.pid} on {proc.api}, simulator on {sim.origin}")
            connector = aiohttp.TCPConnector(limit=opts.concurrency * 2)
            admin_auth = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
            async with aiohttp.ClientSession(connector=connector) as session:
                t0 = time.monotonic()
                deadline = t0 + opts.duration
                stop = asyncio.Event()
                warm = asyncio.Event()

                async def client(worker: int) -> None:
                    wrng = random.Random(opts.seed * 1000 + worker)
                    while not stop.is_set():
                        if res.sent >= opts.max_requests or time.monotonic() >= deadline:
                            stop.set()
                            break
                        call = Call(wrng.choice(INGRESSES), wrng.random() < opts.stream_share, wrng.choice(ALIASES),
                                    bad=wrng.random() < opts.bad_share)
                        url, headers, body = build(call, proc.api, wrng)
                        res.sent += 1
                        started = time.monotonic()
                        try:
                            async with asyncio.timeout(opts.request_timeout):
                                async with session.post(url, data=body, headers=headers) as r:
                                    raw = await r.read()
                                    status, ctype = r.status, r.headers.get("Content-Type", "")
                                    tier = r.headers.get("x-switchyard-tier")
                        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                            cls, why, status = LOST, f"no answer: {type(exc).__name__}: {exc}"[:200], 0
                        else:
                            cls, why = classify(call, status, ctype, raw)
                            if cls == CONTENT and tier not in (None, "0"):
                                res.fallback_served += 1
                        res.latencies.append(time.monotonic() - started)
                        res.classes[cls] += 1
                        res.by_ingress[(call.ingress, cls)] += 1
                        res.statuses[status] += 1
                        if cls == LOST:
                            res.lost.append({"ingress": call.ingress, "stream": call.stream, "alias": call.alias,
                                             "bad": call.bad, "status": status, "why": why})

                async def faults() -> None:
                    names = [m.name for m in mounts]
                    while not stop.is_set():
                        for name in names:
                            label, spec = FAULTS[0] if rng.random() < opts.healthy_share else rng.choice(FAULTS[1:])
                            async with session.delete(f"{sim.origin}/_sim/{name}/faults") as r:
                                r.raise_for_status()
                            if spec is not None:
                                async with session.post(f"{sim.origin}/_sim/{name}/faults", json=spec) as r:
                                    r.raise_for_status()
                            res.faults_applied[label] += 1
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), opts.fault_every)

                async def configs() -> None:
                    nonlocal generation
                    use_put = True
                    while not stop.is_set():
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), opts.config_every)
                        if stop.is_set():
                            break
                        generation += 1
                        text = manifests(base, generation)
                        if use_put:
                            async with session.put(proc.admin + "/admin/config", data=compiled_wire(text), headers=admin_auth) as r:
                                body = await r.json(content_type=None)
                                if r.status != 200 or not body.get("applied"):
                                    res.sidecar_errors.append(f"config push answered {r.status} {body}")
                            res.config_swaps["put"] += 1
                        else:
                            (folder / "soak.yaml").write_text(text)
                            proc.signal(signal.SIGHUP)
                            res.config_swaps["sighup"] += 1
                        use_put = not use_put

                async def sampler() -> None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), opts.warmup)
                    res.rss_start_mb = proc.rss_mb()
                    warm.set()
                    while not stop.is_set():
                        res.rss_peak_mb = max(res.rss_peak_mb, proc.rss_mb())
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), 1.0)

                tasks = [asyncio.create_task(client(i)) for i in range(opts.concurrency)]
                side = [asyncio.create_task(faults()), asyncio.create_task(configs()), asyncio.create_task(sampler())]
                progress_at = t0 + 10
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
                    if time.monotonic() >= progress_at:
                        progress_at += 10
                        _say(opts, f"soak: {time.monotonic() - t0:5.0f}s sent {res.sent} content {res.classes[CONTENT]} "
                                   f"errors {res.classes[PROTOCOL_ERROR]} lost {res.lost_count} rss {proc.rss_mb():.1f} MB")
                await asyncio.gather(*tasks)
                for t in side:
                    t.cancel()
                await asyncio.gather(*side, return_exceptions=True)
                res.duration_s = time.monotonic() - t0
                if not warm.is_set():
                    res.rss_start_mb = proc.rss_mb()
                # Let the faults settle and the sidecar go idle before the last measurements.
                async with session.post(f"{sim.origin}/_sim/reset"):
                    pass
                res.rss_end_mb = proc.rss_mb()
                res.rss_peak_mb = max(res.rss_peak_mb, res.rss_end_mb)
                res.transitions = await _metrics_transitions(session, proc.admin)
            res.drain_exit, res.drain_seconds = await proc.stop()
            res.sidecar_errors += [ln.strip() for ln in proc.lines if "Traceback" in ln or '"level":"error"' in ln][:20]
    return res


def print_report(res: Result, opts: Options) -> None:
    s = res.summary()
    print(f"""
Switchyard soak: {s['duration_s']} s, {opts.concurrency} concurrent clients, faults changed every {opts.fault_every:g} s,
config replaced every {opts.config_every:g} s ({s['config_swaps']}), CPU: {os.cpu_count()} cores (shared)

  requests sent        {s['sent']}
  answered, content    {s['content']}   (of which from a fallback tier: {s['content_from_a_fallback']})
  protocol errors      {s['protocol_errors']}   statuses: {s['statuses']}
  LOST                 {s['lost']}
  latency p50 / p99    {s['latency_ms']['p50']} ms / {s['latency_ms']['p99']} ms  (full answer, client side)
  breaker transitions  {s['breaker_transitions']}
  sidecar RSS          start {s['rss_mb']['start']} MB (after {opts.warmup:g} s warm-up), end {s['rss_mb']['end']} MB,
                       peak {s['rss_mb']['peak']} MB, growth {s['rss_mb']['growth']} MB (bound {s['rss_mb']['bound']} MB)
  drain on SIGTERM     exit {s['drain']['exit']} in {s['drain']['seconds']} s
  faults applied       {s['faults_applied']}
""")
    if res.lost:
        print("  lost examples:")
        for item in res.lost[:10]:
            print("   ", item)
    if res.sidecar_errors:
        print("  sidecar errors:")
        for line in res.sidecar_errors[:5]:
            print("   ", line[:300])
    print("  RESULT:", "PASS" if res.ok() else "FAIL")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of traffic (default 60)")
    p.add_argument("--max-requests", type=int, default=1_000_000, help="stop after this many requests")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--fault-every", type=float, default=2.0, help="seconds between fault changes (default 2)")
    p.add_argument("--config-every", type=float, default=3.0, help="seconds between config replacements (default 3)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds before the start RSS is taken (default 5)")
    p.add_argument("--rss-bound-mb", type=float, default=25.0, help="allowed RSS growth after warm-up, MB (default 25)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    opts = Options(duration=a.duration, max_requests=a.max_requests, concurrency=a.concurrency, fault_every=a.fault_every,
                   config_every=a.config_every, warmup=a.warmup, rss_bound_mb=a.rss_bound_mb, seed=a.seed, quiet=a.quiet)
    res = asyncio.run(run(opts))
    print_report(res, opts)
    if a.json:
        Path(a.json).write_text(json.dumps({"options": dataclasses.asdict(opts), **res.summary()}, indent=2) + "\n")
    return 0 if res.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
