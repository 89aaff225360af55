"""``kubectl switchyard``: look at and test bindings from the command line.

    kubectl switchyard status BINDING    chain, breakers, active tier, usage and cost, limits, pods (the binding's status)
    kubectl switchyard test BINDING      every selected sidecar checks every tier; no prompt is sent
    kubectl switchyard models SOURCE     the live model catalog of a ModelSource (its status)
    kubectl switchyard explain BINDING   why the last request went where it went (the sidecars' status)

Installed with the Python package as the console script ``kubectl-switchyard``; kubectl
finds it on ``PATH`` as a plugin. Flags go after the plugin name:
``kubectl switchyard status support -n team-a`` (flags before or after the command).

How it reaches the cluster: it runs ``kubectl`` (``$KUBECTL``, else the one on ``PATH``),
so every kubeconfig, context and credential plugin works exactly as for kubectl, and it
needs no Kubernetes client library. Reads are ``kubectl get -o json``. The sidecars'
admin API (``test``, ``explain``) is reached through the API server's pod proxy
(``/api/v1/namespaces/NS/pods/POD:4001/proxy/admin/...``) via a ``kubectl proxy`` it
starts on 127.0.0.1 for the duration of the command. The API server consumes the
caller's own ``Authorization`` header, so the namespace's admin token (read from the
Secret ``switchyard-admin-token``) travels in ``X-Switchyard-Admin-Token``.

RBAC the user needs, in the binding's namespace: ``get`` assistantbindings and
modelsources, ``list`` pods; for ``test``/``explain`` also ``get`` on the admin-token
Secret and ``get``/``create`` on ``pods/proxy``.

``--admin-url URL`` talks to one sidecar directly instead (after ``kubectl port-forward
POD 4001``, or a standalone ``switchyard run``), with ``--admin-token`` or
``$SWITCHYARD_ADMIN_TOKEN``.

Exit codes: 0 fine; 1 the answer is bad news (a tier cannot serve, a test failed, the
binding is not Ready); 2 the question could not be answered (no such object, no pod,
kubectl or the proxy failed).

Pure rendering (``render_*``, ``explain_*``) is separate from I/O (``Kubectl``,
``AdminClient``) so it is tested without a cluster.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import re
import select
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GROUP = "switchyard.dev"
SIDECAR_CONTAINER = "switchyard"
ADMIN_PORT_NAME = "sy-admin"
DEFAULT_ADMIN_PORT = 4001
ADMIN_TOKEN_HEADER = "X-Switchyard-Admin-Token"
DEFAULT_TOKEN_SECRET = "switchyard-admin-token"
DEFAULT_TOKEN_KEY = "token"
KUBECTL_TIMEOUT_SECONDS = 60.0
ADMIN_TIMEOUT_SECONDS = 15.0
PROXY_START_TIMEOUT_SECONDS = 15.0

OK, BAD_NEWS, FAILED = 0, 1, 2


class PluginError(Exception):
    """The question could not be answered (exit code 2)."""


# --------------------------------------------------------------------------- kubectl


@dataclass
class Kubectl:
    """Runs kubectl with the user's connection flags."""

    exe: str
    namespace: str | None = None
    context: str | None = None
    kubeconfig: str | None = None

    def _flags(self, namespaced: bool = True) -> list[str]:
        out = []
        if self.kubeconfig:
            out += ["--kubeconfig", self.kubeconfig]
        if self.context:
            out += ["--context", self.context]
        if namespaced and self.namespace:
            out += ["--namespace", self.namespace]
        return out

    def run(self, *args: str, namespaced: bool = True, timeout: float = KUBECTL_TIMEOUT_SECONDS) -> str:
        argv = [self.exe, *self._flags(namespaced), *args]
        try:
            cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise PluginError(f"kubectl {' '.join(args)} timed out after {timeout:.0f}s") from e
        except OSError as e:
            raise PluginError(f"cannot run kubectl ({self.exe}): {e}") from e
        if cp.returncode != 0:
            raise PluginError(cp.stderr.strip() or f"kubectl {' '.join(args)} exited {cp.returncode}")
        return cp.stdout

    def get_json(self, *args: str) -> dict[str, Any]:
        return json.loads(self.run("get", *args, "-o", "json"))

    @contextlib.contextmanager
    def proxy(self) -> Iterator[str]:
        """``kubectl proxy`` on 127.0.0.1 (port chosen by kubectl); yields its base URL."""
        argv = [self.exe, *self._flags(namespaced=False), "proxy", "--port=0", "--address=127.0.0.1",
                "--accept-hosts=^127\\.0\\.0\\.1$"]
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        except OSError as e:
            raise PluginError(f"cannot run kubectl proxy ({self.exe}): {e}") from e
        try:
            yield _proxy_url(proc, PROXY_START_TIMEOUT_SECONDS)
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def _proxy_url(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """Read ``Starting to serve on 127.0.0.1:PORT`` from kubectl proxy's stdout."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        line += chunk
        m = re.search(rb"Starting to serve on ([\d.]+:\d+)", line)
        if m:
            return "http://" + m.group(1).decode()
    err = proc.stderr.read1(4096).decode(errors="replace") if proc.stderr and proc.poll() is not None else ""  # type: ignore[union-attr]
    raise PluginError(f"kubectl proxy did not start within {timeout:.0f}s: {err.strip() or line.decode(errors='replace')}")


# --------------------------------------------------------------------------- sidecar admin API


@dataclass
class AdminClient:
    """Calls one sidecar's admin API: through the pod proxy, or directly (--admin-url)."""

    base: str  # http://127.0.0.1:PROXY/api/v1/namespaces/NS/pods/POD:4001/proxy, or a sidecar's admin URL
    token: str | None
    via_proxy: bool = False
    timeout: float = ADMIN_TIMEOUT_SECONDS

    def call(self, method: str, path: str) -> tuple[int, Any]:
        req = urllib.request.Request(self.base.rstrip("/") + path, method=method, data=b"" if method == "POST" else None)
        req.add_header("Accept", "application/json")
        if self.token and self.via_proxy:
            # kubectl proxy adds the user's own credentials as Authorization (the API server
            # consumes them); the sidecar's token travels in its own header.
            req.add_header(ADMIN_TOKEN_HEADER, self.token)
        elif self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=self.timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            raise PluginError(f"{method} {path}: {getattr(e, 'reason', e)}") from e
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace").strip()


def pod_proxy_base(proxy_url: str, namespace: str, pod: str, port: int) -> str:
    q = urllib.parse.quote
    return f"{proxy_url}/api/v1/namespaces/{q(namespace)}/pods/{q(pod)}:{port}/proxy"


def _error_text(status: int, body: Any) -> str:
    if isinstance(body, dict):
        msg = (body.get("error") or {}).get("message") if isinstance(body.get("error"), dict) else body.get("message")
        if msg:
            return f"HTTP {status}: {msg}"
    return f"HTTP {status}: {str(body)[:300]}"


# --------------------------------------------------------------------------- selection


def selector_string(selector: dict[str, Any] | None) -> str:
    """A LabelSelector as kubectl's ``-l`` string."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def sidecar_admin_port(pod: dict[str, Any]) -> int | None:
    """The admin port of the pod's switchyard container (a native sidecar is an init
    container), or None when it has none."""
    spec = pod.get("spec") or {}
    for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        if c.get("name") == SIDECAR_CONTAINER:
            for p in c.get("ports") or []:
                if p.get("name") == ADMIN_PORT_NAME:
                    return int(p["containerPort"])
            return DEFAULT_ADMIN_PORT
    return None


def sidecar_pods(kubectl: Kubectl, namespace: str, binding: dict[str, Any]) -> list[dict[str, Any]]:
    """Pods the binding's selector matches that carry the sidecar, by name."""
    sel = selector_string((binding.get("spec") or {}).get("selector"))
    if not sel:
        return []
    pods = kubectl.get_json("pods", "--namespace", namespace, "-l", sel).get("items", [])
    return sorted((p for p in pods if sidecar_admin_port(p) is not None), key=lambda p: p["metadata"]["name"])


# --------------------------------------------------------------------------- rendering (pure)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]


def _when(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _cond(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == type_), {})


_STATE_COUNTS = (("openInPods", "open"), ("halfOpenInPods", "half-open"), ("rateLimitedInPods", "rate-limited"),
                 ("disabledInPods", "disabled"))


def _breaker_text(b: dict[str, Any] | None) -> str:
    if not b:
        return "-"
    state = b.get("state", "unknown")
    pods = b.get("reportingPods", 0)
    parts = [state]
    for key, name in _STATE_COUNTS:
        if b.get(key):
            parts.append(f"{name} in {b[key]}/{pods} pods")
    if state == "closed" and pods:
        parts.append(f"{pods} pods")
    if b.get("disabledReason"):
        parts.append(f"disabled for {b['disabledReason']}")
    if b.get("lastFailure"):
        cls = f" [{b['lastFailureClass']}]" if b.get("lastFailureClass") else ""
        parts.append(f"last failure {b['lastFailure']}{cls} at {_when(b.get('lastFailureAt'))}")
    return ", ".join(parts)


def _usage_lines(u: dict[str, Any] | None) -> list[str]:
    """The binding's ``status.usage``: tokens and cost since each selected sidecar started."""
    if not u:
        return ["  usage:    - (no usage reported yet)"]
    cache = [f"{u[k]:,} {what}" for k, what in (("cachedInputTokens", "read from cache"), ("cacheWriteTokens", "written to it"))
             if u.get(k)]
    text = f"{u.get('inputTokens', 0):,} tokens in" + (f" ({', '.join(cache)})" if cache else "")
    text += f", {u.get('outputTokens', 0):,} out"
    if u.get("reasoningTokens"):
        text += f" ({u['reasoningTokens']:,} reasoning)"
    cost = ", ".join(f"{c.get('amount')} {c.get('currency')}" for c in u.get("cost") or [])
    return [
        f"  usage:    {text}",
        f"  cost:     {cost or '- (no price declared for the tiers that served)'}",
        f"            since each of {u.get('pods', 0)} pods' sidecar started, summed at the operator's last poll",
    ]


def _limits_lines(limits: dict[str, Any] | None) -> list[str]:
    """The binding's ``status.limits`` (spec.limits, docs/limits.md): used and left in the current window."""
    lines = []
    for name in ("requestsPerMinute", "tokensPerMinute", "tokensPerDay"):
        u = (limits or {}).get(name)
        if not u:
            continue
        text = f"{name} {u.get('used', 0):,} of {u.get('limit', 0):,} used ({u.get('left', 0):,} left)"
        if u.get("resetsAt"):
            text += f", resets {u['resetsAt']}"
        lines.append(("  limits:   " if not lines else "            ") + text)
    return lines


def render_status(binding: dict[str, Any], pods: Sequence[dict[str, Any]]) -> tuple[list[str], int]:
    """``status``: lines and exit code (1 when the binding is not Ready or a tier cannot serve)."""
    meta, spec, status = binding["metadata"], binding.get("spec") or {}, binding.get("status") or {}
    lines = [f"AssistantBinding {meta.get('namespace')}/{meta['name']}"]
    summary = status.get("summary") or {}
    ready = _cond(binding, "Ready")
    resolved = _cond(binding, "Resolved")
    lines.append(f"  primary:  {summary.get('primary', '-')}")
    lines.append(f"  aliases:  {', '.join(spec.get('aliases') or [meta['name']])}")
    if status.get("observedGeneration") is not None and status.get("observedGeneration") != meta.get("generation"):
        lines.append(f"  note:     status is for generation {status.get('observedGeneration')}, the spec is at {meta.get('generation')}")
    active = status.get("active")
    lines.append("")
    chain = status.get("chain") or []
    if chain:
        rows = []
        for t in chain:
            mark = "*" if active and active.get("tier") == t["tier"] else ""
            serves = "yes" if t.get("resolvable") else f"no: {t.get('reason')}"
            rows.append([f"{t['tier']}{mark}", t.get("source"), t.get("model") or "-", t.get("protocol") or "-", serves,
                         _breaker_text(t.get("breaker"))])
        lines += ["  " + r for r in _table(["TIER", "SOURCE", "MODEL", "PROTOCOL", "RESOLVABLE", "BREAKER"], rows)]
        for t in chain:
            if not t.get("resolvable") and t.get("message"):
                lines.append(f"  tier{t['tier']}: {t['message']}")
            if t.get("incompatible"):
                how = "serves degraded (allowDegrading)" if t.get("degradable") else "skipped"
                lines.append(f"  tier{t['tier']}: lacks what the binding requires: {', '.join(t['incompatible'])}; {how}")
    else:
        lines.append("  chain: (none: the binding is unbound)" if resolved.get("reason") in ("PrimaryCleared", "PrimaryNotSet")
                     else "  chain: (not resolved yet)")
    lines.append("")
    if active:
        lines.append(f"  active:   tier{active['tier']} {active.get('source')}/{active.get('model')}"
                     f" (last used {_when(active.get('lastUsedAt'))}, in {active.get('pods', 0)} pods)")
    else:
        lines.append("  active:   - (no request served yet)")
    lines += _usage_lines(status.get("usage"))
    lines += _limits_lines(status.get("limits"))
    p = status.get("pods") or {}
    lines.append(f"  pods:     {p.get('configured', 0)} of {p.get('selected', 0)} selected pods run the current config")
    for pod in pods:
        st = pod.get("status") or {}
        lines.append(f"    {pod['metadata']['name']}  {st.get('phase', '-')}  {st.get('podIP') or '-'}")
    for prob in p.get("problems") or []:
        lines.append(f"    problem: {prob.get('pod')}: {prob.get('reason')} {prob.get('message', '')}".rstrip())
    lines.append("")
    for c in (status.get("conditions") or []):
        lines.append(f"  {c.get('type')}={c.get('status')} ({c.get('reason')}): {c.get('message', '')}")
    if not status.get("conditions"):
        lines.append("  conditions: none yet (is the operator running?)")
    bad = ready.get("status") != "True" or any(not t.get("resolvable") for t in chain)
    return lines, BAD_NEWS if bad else OK


def render_models(source: dict[str, Any]) -> tuple[list[str], int]:
    """``models``: the live catalog of a ModelSource, with its default model and allow-list marked."""
    meta, spec, status = source["metadata"], source.get("spec") or {}, source.get("status") or {}
    catalog = status.get("catalog") or {}
    models = catalog.get("models") or []
    allowed = set(spec.get("models") or [])
    default = spec.get("defaultModel")
    cred, ready = _cond(source, "CredentialValid"), _cond(source, "CatalogReady")
    lines = [f"ModelSource {meta.get('namespace')}/{meta['name']} ({spec.get('provider')}, {spec.get('baseURL') or 'default URL'})"]
    lines.append(f"  credential: {cred.get('status', 'Unknown')} ({cred.get('reason', '-')}) {cred.get('message', '')}".rstrip())
    lines.append(f"  catalog:    {catalog.get('count', len(models))} models, fetched {_when(catalog.get('fetchedAt'))};"
                 f" {ready.get('reason', 'not fetched yet')}")
    if not models:
        lines.append("  (no catalog: the operator has not fetched it, or the upstream refused)")
        return lines, BAD_NEWS
    rows = []
    for mid in models:
        notes = []
        if mid == default:
            notes.append("default")
        if allowed:
            notes.append("allowed" if mid in allowed else "not in spec.models")
        rows.append([mid, ", ".join(notes)])
    lines.append("")
    lines += ["  " + r for r in _table(["MODEL", "NOTES"], rows)]
    if len(models) < catalog.get("count", 0):
        lines.append(f"  ... {catalog['count'] - len(models)} more not kept in status")
    missing = [m for m in ([default] if default else []) + sorted(allowed) if m not in models]
    for m in missing:
        lines.append(f"  warning: {m} is configured but not in the catalog")
    return lines, BAD_NEWS if missing or cred.get("status") == "False" else OK


@dataclass
class PodAnswer:
    pod: str
    status: int = 0
    body: Any = None
    error: str | None = None


def render_test(binding: str, answers: Sequence[PodAnswer]) -> tuple[list[str], int]:
    """``test``: each pod's answer to POST /admin/bindings/NAME/test."""
    lines: list[str] = []
    code = OK
    for a in answers:
        if a.error or a.status != 200 or not isinstance(a.body, dict):
            lines.append(f"pod {a.pod}: could not test: {a.error or _error_text(a.status, a.body)}")
            code = max(code, FAILED)
            continue
        b = a.body
        verdict = "ok" if b.get("ok") else ("unbound" if b.get("unbound") else "NOT OK")
        lines.append(f"pod {a.pod}: {verdict}  (prompt sent: {'yes' if b.get('prompt_sent') else 'no'})")
        rows = []
        for t in b.get("tiers") or []:
            failed = [k for k, v in (t.get("checks") or {}).items() if not v]
            rows.append([t.get("tier"), t.get("source"), t.get("model") or "-", "yes" if t.get("ok") else "no",
                         t.get("breaker", "-"), "all passed" if not failed else "failed: " + ", ".join(failed),
                         t.get("problem") or ""])
        lines += ["  " + r for r in _table(["TIER", "SOURCE", "MODEL", "OK", "BREAKER", "CHECKS", "PROBLEM"], rows)]
        if not b.get("ok"):
            code = max(code, BAD_NEWS)
    if not answers:
        lines.append(f"no pod carries binding {binding}'s sidecar: nothing to test")
        code = FAILED
    return lines, code


def _skip_reason(t: dict[str, Any]) -> str:
    """Why a tier before the serving one is passed over, as the sidecar sees it now."""
    if not t.get("resolvable"):
        return f"unresolvable: {t.get('problem')}"
    br = t.get("breaker") or {}
    state = br.get("state", "closed")
    last = br.get("last_failure")
    cls = f" [{br['last_failure_class']}]" if br.get("last_failure_class") else ""
    failure = f"; last failure {last}{cls} at {_when(br.get('last_failure_at'))}" if last else ""
    if state == "open":
        probing = ", recovery check running" if br.get("probing") else ""
        return f"breaker open (retry in {br.get('retry_in_seconds', 0):.0f}s{probing}){failure}"
    if state == "rate-limited":
        return f"rate-limited by the upstream for {br.get('rate_limited_for_seconds', 0):.0f}s more{failure}"
    if state == "disabled":
        return f"disabled: {br.get('disabled_reason') or last or 'credential or model refused'} (until its source, Secret or binding changes, or an admin reset)"
    if state == "half-open":
        return f"half-open: trial requests only{failure}"
    if last:
        return f"failed on the last attempt ({last}{cls} at {_when(br.get('last_failure_at'))}, {br.get('consecutive_failures', 0)} in a row); breaker still closed"
    return "healthy now (it may have been skipped for a request feature: see x-switchyard-fallback-reason on that response)"


def _key_line(k: dict[str, Any]) -> str:
    state = str(k.get("state") or "unknown")
    if state == "rate-limited":
        more = k.get("rate_limited_for_seconds")
        why = f"{math.ceil(float(more))}s more" if isinstance(more, (int, float)) else "waiting"
        if k.get("last_failure"):
            why += f"; last failure {k['last_failure']}"
        return f"{state} ({why})"
    if state == "disabled":
        return f"{state} ({k.get('disabled_reason') or 'refused'})"
    if state == "unresolvable":
        return f"{state} ({k.get('problem')})"
    return state


def explain_binding(name: str, statuses: Sequence[tuple[str, dict[str, Any]]]) -> tuple[list[str], int]:
    """``explain``: from each pod's GET /admin/status, the latest request's serving tier and why
    each earlier tier was passed over."""
    entries = []
    for pod, st in statuses:
        b = next((x for x in st.get("bindings") or [] if x.get("name") == name), None)
        if b is not None:
            entries.append((pod, st, b))
    if not entries:
        return [f"no sidecar serves binding {name} (is it selected, and has the operator pushed its config?)"], FAILED
    lines: list[str] = []
    unbound = [pod for pod, _, b in entries if b.get("unbound")]
    if unbound:
        return [f"binding {name} is unbound (spec.primary: null): every request is refused with 503 binding_unbound; "
                "nothing is sent anywhere"], BAD_NEWS
    used = [(pod, st, b) for pod, st, b in entries if b.get("last_used")]
    if not used:
        lines.append(f"binding {name}: no request served yet in {len(entries)} pod(s)")
        pod, st, b = entries[0]
    else:
        pod, st, b = max(used, key=lambda e: e[2]["last_used"].get("at") or 0)
        last = b["last_used"]
        lines.append(f"The last request of {name} was served at {_when(last.get('at'))} in pod {pod}")
        lines.append(f"  by tier{last['tier']} {last.get('source')}/{last.get('model')}"
                     + (" (the primary)" if last["tier"] == 0 else " (a fallback)"))
    lines.append(f"  config {st.get('version') or '-'} loaded {_when(st.get('loaded_at'))}")
    served = b["last_used"]["tier"] if b.get("last_used") else None
    lines.append("")
    lines.append("Tiers, as that sidecar sees them now:")
    code = OK
    for t in b.get("tiers") or []:
        label = f"  tier{t['tier']} {t.get('source')}/{t.get('model')}"
        if served is not None and t["tier"] < served:
            lines.append(f"{label}: passed over: {_skip_reason(t)}")
            code = BAD_NEWS
        elif served is not None and t["tier"] == served:
            lines.append(f"{label}: served the last request")
        else:
            br = t.get("breaker") or {}
            state = br.get("state", "closed") if t.get("resolvable") else "unresolvable"
            lines.append(f"{label}: {state}" + (f" ({t.get('problem')})" if t.get("problem") else ""))
        for tr in (t.get("breaker") or {}).get("transitions") or []:
            lines.append(f"      {_when(tr.get('at'))} {tr.get('from')} -> {tr.get('to')}: {tr.get('reason')}")
        for k in t.get("keys") or []:  # a source with several keys: each by index, tried in that order
            lines.append(f"      key {k.get('index')}: {_key_line(k)}")
    lines.append("")
    lines.append("Each response carries the exact trail of its own request: x-switchyard-tier,"
                 " x-switchyard-fallback-reason, x-switchyard-degraded.")
    return lines, code


# --------------------------------------------------------------------------- commands


@dataclass
class Ctx:
    kubectl: Kubectl
    output: str = "text"
    pod: str | None = None
    admin_url: str | None = None
    admin_token: str | None = None
    token_secret: str = DEFAULT_TOKEN_SECRET
    token_key: str = DEFAULT_TOKEN_KEY


def _emit(ctx: Ctx, lines: list[str], data: Any) -> None:
    if ctx.output == "json":
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print("\n".join(lines))


def _binding(ctx: Ctx, name: str) -> dict[str, Any]:
    return ctx.kubectl.get_json(f"assistantbindings.{GROUP}", name)


def cmd_status(ctx: Ctx, name: str) -> int:
    b = _binding(ctx, name)
    pods = sidecar_pods(ctx.kubectl, b["metadata"]["namespace"], b)
    lines, code = render_status(b, pods)
    _emit(ctx, lines, {"binding": b["metadata"]["name"], "namespace": b["metadata"]["namespace"],
                       "status": b.get("status") or {}, "pods": [p["metadata"]["name"] for p in pods]})
    return code


def cmd_models(ctx: Ctx, name: str) -> int:
    s = ctx.kubectl.get_json(f"modelsources.{GROUP}", name)
    lines, code = render_models(s)
    _emit(ctx, lines, {"source": s["metadata"]["name"], "namespace": s["metadata"]["namespace"],
                       "catalog": (s.get("status") or {}).get("catalog")})
    return code


def _token(ctx: Ctx, namespace: str) -> str | None:
    if ctx.admin_token:
        return ctx.admin_token
    try:
        secret = ctx.kubectl.get_json("secret", ctx.token_secret, "--namespace", namespace)
    except PluginError as e:
        raise PluginError(f"cannot read the admin token (Secret {namespace}/{ctx.token_secret}): {e}") from e
    raw = (secret.get("data") or {}).get(ctx.token_key)
    if not raw:
        raise PluginError(f"Secret {namespace}/{ctx.token_secret} has no key {ctx.token_key!r}")
    return base64.b64decode(raw).decode().strip()


def _each_sidecar(ctx: Ctx, name: str, method: str, path: str) -> list[PodAnswer]:
    """Call ``path`` on every sidecar of the binding (or --pod, or --admin-url)."""
    if ctx.admin_url:
        client = AdminClient(ctx.admin_url, ctx.admin_token or os.environ.get("SWITCHYARD_ADMIN_TOKEN") or None)
        try:
            status, body = client.call(method, path)
            return [PodAnswer(ctx.admin_url, status, body)]
        except PluginError as e:
            return [PodAnswer(ctx.admin_url, error=str(e))]
    b = _binding(ctx, name)
    ns = b["metadata"]["namespace"]
    pods = sidecar_pods(ctx.kubectl, ns, b)
    if ctx.pod:
        pods = [p for p in pods if p["metadata"]["name"] == ctx.pod]
        if not pods:
            raise PluginError(f"pod {ctx.pod} is not selected by binding {name} or carries no sidecar")
    if not pods:
        return []
    token = _token(ctx, ns)
    answers = []
    with ctx.kubectl.proxy() as proxy:
        for p in pods:
            pod = p["metadata"]["name"]
            if not (p.get("status") or {}).get("podIP"):
                answers.append(PodAnswer(pod, error="the pod has no IP yet"))
                continue
            client = AdminClient(pod_proxy_base(proxy, ns, pod, sidecar_admin_port(p) or DEFAULT_ADMIN_PORT), token, via_proxy=True)
            try:
                status, body = client.call(method, path)
                answers.append(PodAnswer(pod, status, body))
            except PluginError as e:
                answers.append(PodAnswer(pod, error=str(e)))
    return answers


def cmd_test(ctx: Ctx, name: str) -> int:
    answers = _each_sidecar(ctx, name, "POST", f"/admin/bindings/{urllib.parse.quote(name)}/test")
    lines, code = render_test(name, answers)
    _emit(ctx, lines, {"binding": name, "pods": {a.pod: a.body if a.error is None else {"error": a.error} for a in answers}})
    return code


def cmd_explain(ctx: Ctx, name: str) -> int:
    answers = _each_sidecar(ctx, name, "GET", "/admin/status")
    statuses = [(a.pod, a.body) for a in answers if a.error is None and a.status == 200 and isinstance(a.body, dict)]
    errors = [f"pod {a.pod}: {a.error or _error_text(a.status, a.body)}" for a in answers
              if not (a.error is None and a.status == 200 and isinstance(a.body, dict))]
    lines, code = explain_binding(name, statuses)
    if errors:
        lines = [*lines, "", *errors]
        code = max(code, FAILED if not statuses else code)
    _emit(ctx, lines, {"binding": name, "explanation": lines})
    return code


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Connection and output flags, accepted before or after the command."""
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    parser.add_argument("-n", "--namespace", default=d(None), help="namespace (default: the context's)")
    parser.add_argument("--context", default=d(None), help="kubeconfig context")
    parser.add_argument("--kubeconfig", default=d(None), help="kubeconfig file")
    parser.add_argument("-o", "--output", choices=["text", "json"], default=d("text"))
    parser.add_argument("--kubectl", default=d(None), help="kubectl binary (default: $KUBECTL, else kubectl on PATH)")
    parser.add_argument("--admin-token-secret", default=d(DEFAULT_TOKEN_SECRET), help="the namespace's admin-token Secret")
    parser.add_argument("--admin-token-key", default=d(DEFAULT_TOKEN_KEY), help="its key")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kubectl switchyard",
        allow_abbrev=False,
        description="Inspect and test Switchyard bindings (status, test, models, explain).",
        epilog="Example: kubectl switchyard status support -n team-a",
    )
    _common(p, suppress=False)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("status", help="chain, breakers, active tier, usage and cost, and pods of a binding (from its status)", allow_abbrev=False)
    s.add_argument("binding")
    _common(s, suppress=True)
    s = sub.add_parser("models", help="the live model catalog of a ModelSource (from its status)", allow_abbrev=False)
    s.add_argument("source")
    _common(s, suppress=True)
    for cmd, text in (("test", "ask each sidecar whether every tier resolves (sends no prompt)"),
                      ("explain", "why the last request went where it went (from the sidecars' status)")):
        s = sub.add_parser(cmd, help=text, allow_abbrev=False)
        s.add_argument("binding")
        s.add_argument("--pod", help="only this pod")
        s.add_argument("--admin-url", help="a sidecar's admin URL, instead of the pod proxy")
        s.add_argument("--admin-token", help="its admin token (default: the namespace's Secret, or $SWITCHYARD_ADMIN_TOKEN)")
        _common(s, suppress=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    exe = args.kubectl or os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not exe:
        print("kubectl switchyard: kubectl not found (set $KUBECTL or put it on PATH)", file=sys.stderr)
        return FAILED
    ctx = Ctx(Kubectl(exe, args.namespace, args.context, args.kubeconfig), output=args.output,
              pod=getattr(args, "pod", None), admin_url=getattr(args, "admin_url", None),
              admin_token=getattr(args, "admin_token", None),
              token_secret=args.admin_token_secret, token_key=args.admin_token_key)
    try:
        if args.command == "status":
            return cmd_status(ctx, args.binding)
        if args.command == "models":
            return cmd_models(ctx, args.source)
        if args.command == "test":
            return cmd_test(ctx, args.binding)
        return cmd_explain(ctx, args.binding)
    except PluginError as e:
        print(f"kubectl switchyard: {e}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
