"""Config push to the sidecars and reading their status: the operator's sidecar I/O.

``PushMemory`` remembers, per pod, the config version its sidecar runs, so a push
happens only when the version a pod should run differs from the one it runs (idempotent
by version hash), the pod or its sidecar (re)started or moved (its incarnation changed),
or the sidecar reports another version than the one remembered (it restarted in place).
A failed push is retried with exponential backoff; a new version is tried at once.

It also remembers, per pod, the ``.metadata.generation`` of each binding in the config
the sidecar is known to run, so that when a binding changes, the tiers the sidecar had
disabled for a permanent failure are reset once, after the new config is in place
(``generation_changed`` / ``generation_applied``; see the reconciler).

``put_config``, ``get_status``, ``reset_tier`` and ``put_health`` are the only calls to the sidecars'
admin API; each is bounded by the connect and request timeouts, so one unreachable
sidecar costs at most that, and the reconciler runs them concurrently under a shared
semaphore.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp
import orjson

from switchyard.sidecar.contract.health import HEALTH_PATH, SIGNATURE_HEADER, HealthHints, sign
from switchyard.sidecar.contract.report import ReportError, SidecarReport, parse_report

from .selection import PodInfo
from .status import PodProblem


@dataclass
class _PodRecord:
    incarnation: str
    version: str | None = None  # the version the sidecar is known to run
    attempted: str | None = None  # the version last attempted
    failures: int = 0
    next_attempt_at: float = 0.0
    problem: PodProblem | None = None
    generations: dict[str, int] = field(default_factory=dict)  # binding -> generation its sidecar runs


class PushMemory:
    def __init__(self, *, backoff_initial_seconds: float = 1.0, backoff_max_seconds: float = 60.0) -> None:
        self.backoff_initial_seconds = backoff_initial_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self._pods: dict[tuple[str, str], _PodRecord] = {}

    def _record(self, pod: PodInfo) -> _PodRecord:
        rec = self._pods.get(pod.key)
        if rec is None or rec.incarnation != pod.incarnation:
            rec = _PodRecord(incarnation=pod.incarnation)
            self._pods[pod.key] = rec
        return rec

    def needs_push(self, pod: PodInfo, version: str, now: float) -> bool:
        rec = self._record(pod)
        if rec.version == version:
            return False
        if rec.attempted == version and now < rec.next_attempt_at:
            return False  # backing off this version
        return True

    def pushed(self, pod: PodInfo, version: str) -> None:
        rec = self._record(pod)
        rec.version = rec.attempted = version
        rec.failures = 0
        rec.next_attempt_at = 0.0
        rec.problem = None

    def failed(self, pod: PodInfo, version: str, problem: PodProblem, now: float) -> float:
        """Record a failed push; returns the seconds until the next attempt."""
        rec = self._record(pod)
        rec.failures = rec.failures + 1 if rec.attempted == version else 1
        rec.attempted = version
        delay = min(self.backoff_max_seconds, self.backoff_initial_seconds * 2 ** (rec.failures - 1))
        rec.next_attempt_at = now + delay
        rec.problem = problem
        return delay

    def observed(self, pod: PodInfo, reported_version: str | None) -> None:
        """What the sidecar said it runs (GET /admin/status): the truth beats memory."""
        rec = self._record(pod)
        if rec.version != reported_version:
            rec.version = reported_version
            if rec.attempted != reported_version:
                rec.next_attempt_at = 0.0

    def running(self, pod: PodInfo) -> str | None:
        """The config version this pod's sidecar is known to run (None: none, or not known)."""
        return self._record(pod).version

    def runs(self, pod: PodInfo, version: str) -> bool:
        return self._record(pod).version == version

    def problem(self, pod: PodInfo) -> PodProblem | None:
        return self._record(pod).problem

    def set_problem(self, pod: PodInfo, problem: PodProblem | None) -> None:
        self._record(pod).problem = problem

    def generation_changed(self, pod: PodInfo, binding: str, generation: int, baseline: int | None) -> bool:
        """Does ``pod`` run ``binding`` at a generation other than the one it ran before?

        ``baseline`` stands in for a pod this process has not configured yet: the generation
        the binding's status was last written for (so a change made while the operator was
        down is still noticed after a restart). No baseline: nothing to compare, no change."""
        generations = self._record(pod).generations
        if binding not in generations and baseline is not None:
            generations[binding] = baseline  # remembered even if the pod cannot be reached now
        known = generations.get(binding)
        return known is not None and known != generation

    def generation_applied(self, pod: PodInfo, binding: str, generation: int) -> None:
        self._record(pod).generations[binding] = generation

    def retain_generations(self, pod: PodInfo, bindings: frozenset[str] | set[str]) -> None:
        """Forget bindings the pod no longer runs (its sidecar forgets their tiers' state too)."""
        rec = self._record(pod)
        for name in [n for n in rec.generations if n not in bindings]:
            del rec.generations[name]

    def retry_in(self, pods: list[PodInfo], now: float) -> float | None:
        """Seconds until the earliest pending retry among ``pods`` (None: nothing pending)."""
        waits = [
            max(0.0, rec.next_attempt_at - now)
            for p in pods
            if (rec := self._pods.get(p.key)) is not None and rec.version != rec.attempted and rec.next_attempt_at
        ]
        return min(waits) if waits else None

    def retain(self, live: set[tuple[str, str]], namespace: str) -> None:
        for key in [k for k in self._pods if k[0] == namespace and k not in live]:
            del self._pods[key]


# --------------------------------------------------------------------------- I/O


@dataclass(frozen=True)
class AdminTimeouts:
    connect_seconds: float = 2.0
    request_seconds: float = 5.0

    def client(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.request_seconds, sock_connect=self.connect_seconds)


def _message(raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
        return str(((body.get("error") or {}).get("message")) or "")[:300]
    except (orjson.JSONDecodeError, AttributeError):
        return raw[:300].decode(errors="replace")


async def put_config(
    session: aiohttp.ClientSession, pod: PodInfo, url: str, token: str, body: bytes, timeouts: AdminTimeouts
) -> tuple[str | None, PodProblem | None]:
    """PUT the config; (version the sidecar now runs, None) or (None, problem)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        async with session.put(f"{url}/admin/config", data=body, headers=headers, timeout=timeouts.client()) as resp:
            raw = await resp.read()
            if resp.status == 200:
                return str(orjson.loads(raw).get("version") or ""), None
            if resp.status in (401, 403):
                return None, PodProblem(pod.name, "Unauthorized", "the sidecar refused the admin token")
            if resp.status == 409:
                return None, PodProblem(pod.name, "SchemaMismatch", _message(raw))
            return None, PodProblem(pod.name, "Rejected", f"HTTP {resp.status}: {_message(raw)}")
    except TimeoutError:
        return None, PodProblem(pod.name, "Unreachable", f"no answer from {url} within {timeouts.request_seconds:g}s")
    except aiohttp.ClientError as e:
        return None, PodProblem(pod.name, "Unreachable", f"{url}: {type(e).__name__}")
    except (orjson.JSONDecodeError, AttributeError):
        return None, PodProblem(pod.name, "Rejected", "the sidecar answered 200 without a JSON body")


async def get_status(
    session: aiohttp.ClientSession, pod: PodInfo, url: str, token: str | None, timeouts: AdminTimeouts
) -> tuple[SidecarReport | None, PodProblem | None]:
    """GET /admin/status; (report, None) or (None, problem).

    A report that does not match the contract (``switchyard.sidecar.contract.report``) is a
    problem of this pod (``Rejected``; ``SchemaMismatch`` for a newer report_version), never
    an exception: the pod's health is then not counted, as for a pod that cannot be reached."""
    try:
        # Secret delivery sends no token: the route is read-only and open (nothing secret
        # on the wire in either direction).
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with session.get(f"{url}/admin/status", headers=headers, timeout=timeouts.client()) as resp:
            raw = await resp.read()
            if resp.status in (401, 403):
                return None, PodProblem(pod.name, "Unauthorized", "the sidecar refused the admin token")
            if resp.status != 200:
                return None, PodProblem(pod.name, "Rejected", f"GET /admin/status: HTTP {resp.status}")
            data = orjson.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return parse_report(data), None
    except ReportError as e:
        reason = "SchemaMismatch" if e.newer_version else "Rejected"
        return None, PodProblem(pod.name, reason, f"GET /admin/status: unreadable report: {e}")
    except TimeoutError:
        return None, PodProblem(pod.name, "Unreachable", f"no answer from {url} within {timeouts.request_seconds:g}s")
    except aiohttp.ClientError as e:
        return None, PodProblem(pod.name, "Unreachable", f"{url}: {type(e).__name__}")
    except (orjson.JSONDecodeError, ValueError):
        return None, PodProblem(pod.name, "Rejected", "GET /admin/status did not answer a JSON object")


async def reset_tier(
    session: aiohttp.ClientSession, pod: PodInfo, url: str, token: str, binding: str, tier: int, timeouts: AdminTimeouts
) -> PodProblem | None:
    """POST /admin/bindings/{binding}/reset?tier=N: put one tier back in service. None when done."""
    path = f"/admin/bindings/{quote(binding, safe='')}/reset?tier={int(tier)}"
    return await _admin_write(
        session, "POST", pod, url, path, timeouts, headers={"Authorization": f"Bearer {token}"},
        refused="the sidecar refused the admin token", what=f"reset of {binding} tier {tier}",
    )


async def put_health(
    session: aiohttp.ClientSession, pod: PodInfo, url: str, token: str, hints: HealthHints, timeouts: AdminTimeouts,
    *, now: float | None = None,
) -> PodProblem | None:
    """PUT /admin/health: this pod's whole set of shared-health hints (docs/shared-health.md),
    signed with the admin token (the token itself never crosses the wire). None when taken."""
    body = hints.to_body()
    at = int(time.time() if now is None else now)
    headers = {SIGNATURE_HEADER: sign(token, at, body), "Content-Type": "application/json"}
    return await _admin_write(
        session, "PUT", pod, url, HEALTH_PATH, timeouts, headers=headers, data=body,
        refused="the sidecar refused the signed health hints", what=f"PUT {HEALTH_PATH}",
    )


async def _admin_write(
    session: aiohttp.ClientSession, method: str, pod: PodInfo, url: str, path: str, timeouts: AdminTimeouts, *,
    headers: dict[str, str], refused: str, what: str, data: bytes | None = None,
) -> PodProblem | None:
    """One write to a sidecar's admin API: None when it answered 200, else why not."""
    try:
        async with session.request(method, f"{url}{path}", data=data, headers=headers, timeout=timeouts.client()) as resp:
            raw = await resp.read()
            if resp.status == 200:
                return None
            if resp.status in (401, 403):
                return PodProblem(pod.name, "Unauthorized", refused)
            return PodProblem(pod.name, "Rejected", f"{what}: HTTP {resp.status}: {_message(raw)}")
    except TimeoutError:
        return PodProblem(pod.name, "Unreachable", f"no answer from {url} within {timeouts.request_seconds:g}s")
    except aiohttp.ClientError as e:
        return PodProblem(pod.name, "Unreachable", f"{url}: {type(e).__name__}")
