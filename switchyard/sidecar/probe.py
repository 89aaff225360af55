"""Prompt-free recovery checks: is an open tier back, without spending a user request?

When an open tier's cooldown ends, the prober calls an endpoint that sends no prompt,
with the tier's own credential and timeouts:

    openai-chat (openai, openrouter, openai-compatible)   GET {baseURL}/models
    anthropic-messages                                    GET {baseURL}/v1/models
    gemini                                                GET {baseURL}/v1beta/models/{model}

A pass moves the tier to half-open (``halfOpenRequests`` real requests decide the
rest); a failure re-arms the cooldown with backoff, keeps it rate-limited as long as
asked, or disables it (401/403/404). ``Prober.loop`` runs the checks that are due once a
second; a request that finds a tier due kicks its check at once (and goes on to the next
tier meanwhile). Tests move the breaker clock and call ``run_due()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from switchyard.sidecar.contract.config import CompiledBinding, CompiledKey, CompiledTier
from switchyard.sidecar.routing import breaker, classify
from switchyard.sidecar.translate.base import UpstreamCall, adapter_for, auth_headers
from switchyard.sidecar.upstream import UpstreamConnectError, UpstreamError, UpstreamTimeout, error_text, fetch

from switchyard.sidecar.routing.breaker import BreakerBoard, TierHealth
from switchyard.sidecar.upstream import Upstreams


class Host(Protocol):
    """What the prober uses of the sidecar's state (``state.Runtime`` is one): declared
    here so that this module needs nothing from ``state``, which owns the prober."""

    snapshot: Any
    breakers: BreakerBoard
    clock: Callable[[], float]
    upstreams: Upstreams
    metrics: Any

    def health(self, b: CompiledBinding, tier: CompiledTier) -> TierHealth: ...

    def note_transitions(self, b: CompiledBinding, tier: CompiledTier, h: TierHealth, seen: int) -> None: ...

    def key_health(self, b: CompiledBinding, tier: CompiledTier, index: int) -> TierHealth: ...

    def settle_keys(self, b: CompiledBinding, tier: CompiledTier) -> None: ...

    def probe_tier(self, b: CompiledBinding, tier: CompiledTier) -> CompiledTier: ...

log = logging.getLogger("switchyard.probe")

PROBE_TIMEOUT_CAP_SECONDS = 10.0


def probe_call(tier: CompiledTier, *, whole_list: bool = False) -> UpstreamCall:
    headers = {"Accept": "application/json", **tier.headers, **auth_headers(tier)}
    if tier.protocol == "anthropic-messages":
        headers.setdefault("anthropic-version", "2023-06-01")
        url = f"{tier.base_url}/v1/models?limit={1000 if whole_list else 1}"
    elif tier.protocol == "gemini":
        url = f"{tier.base_url}/v1beta/models/{tier.model.removeprefix('models/')}"
    else:
        url = f"{tier.base_url}/models"
    return UpstreamCall("GET", url, headers, None, False)


class Prober:
    def __init__(self, runtime: Host) -> None:
        self.rt = runtime
        self._tasks: set[asyncio.Task[None]] = set()
        self.checks = 0  # checks run, for tests and status

    def kick(self, binding: CompiledBinding, tier: CompiledTier) -> None:
        """Start a check of this tier in the background unless one is running."""
        h = self.rt.health(binding, tier)
        if h.probing:
            return
        h.probing = True
        task = asyncio.get_running_loop().create_task(self._check(binding, tier))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def confirm(self, binding: CompiledBinding, tier: CompiledTier, failure: classify.Failure) -> None:
        """Check, without a prompt, what a request's answer said about the tier (its key
        refused, its model not found) before the tier is disabled; in the background.
        Called once ``breaker.record_suspect`` has marked the check as running."""
        task = asyncio.get_running_loop().create_task(self._confirm(binding, tier, failure))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def confirm_key(self, binding: CompiledBinding, tier: CompiledTier, key: CompiledKey, failure: classify.Failure) -> None:
        """``confirm`` for one key of a tier with several: the check is sent with that key,
        and a confirmed refusal disables that key only (the tier when it was its last)."""
        task = asyncio.get_running_loop().create_task(self._confirm_key(binding, tier, key, failure))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _confirm_key(self, binding: CompiledBinding, tier: CompiledTier, key: CompiledKey, failure: classify.Failure) -> None:
        rt = self.rt
        kh = rt.key_health(binding, tier, key.index)
        self.checks += 1
        try:
            check = await self._call(tier.with_key(key))
        except Exception:  # a bug here must not leave the key marked as being checked
            log.exception("confirming check failed")
            check = None
        if check is not None and check.cls == breaker.PERMANENT and check.reason == classify.AUTH_ERROR:
            breaker.confirmed(kh, failure.trail_text(), key.fingerprint(), time.time())
            rt.settle_keys(binding, tier)
            outcome = "confirmed"
        else:
            breaker.not_confirmed(kh)
            outcome = "not-confirmed"
        rt.metrics.tier(binding, tier).probe(outcome)
        log.info(
            "confirm",
            extra={"switchyard": {"binding": binding.name, "tier": tier.index, "key": key.index, "source": tier.source,
                                  "outcome": outcome, "request_failure": failure.trail_text(),
                                  "check": check.trail_text() if check else "passed"}},
        )

    async def _confirm(self, binding: CompiledBinding, tier: CompiledTier, failure: classify.Failure) -> None:
        rt = self.rt
        h = rt.health(binding, tier)
        seen = h.transition_count
        self.checks += 1
        try:
            check = await self._call(rt.probe_tier(binding, tier), model_listed=failure.reason == classify.NOT_FOUND)
        except Exception:  # a bug here must not leave the tier marked as being checked
            log.exception("confirming check failed")
            check = None
        if check is not None and check.cls == breaker.PERMANENT:
            breaker.confirmed(h, failure.trail_text(), tier.fingerprint(), time.time())
            outcome = "confirmed"
        else:
            breaker.not_confirmed(h)
            outcome = "not-confirmed"
        rt.metrics.tier(binding, tier).probe(outcome)
        rt.note_transitions(binding, tier, h, seen)
        log.info(
            "confirm",
            extra={"switchyard": {"binding": binding.name, "tier": tier.index, "source": tier.source, "outcome": outcome,
                                  "request_failure": failure.trail_text(), "check": check.trail_text() if check else "passed"}},
        )

    async def run_due(self) -> int:
        """Check every tier whose cooldown is over; wait for the checks. Returns how many."""
        snap = self.rt.snapshot
        if snap is None:
            return 0
        now = self.rt.clock()
        due = []
        for b in snap.config.bindings:
            for t in b.tiers:
                h = self.rt.breakers.peek(f"{b.namespace}/{b.name}", t.key)
                if h is not None and breaker.probe_due(h, b.breaker, now):
                    h.probing = True
                    due.append(self._check(b, t))
        if due:
            await asyncio.gather(*due)
        return len(due)

    async def wait_idle(self) -> None:
        """Wait for checks kicked in the background (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def loop(self, interval: float = 1.0) -> None:
        while True:
            try:
                await self.run_due()
            except Exception:  # a bug here must not stop recovery for good
                log.exception("probe round failed")
            await asyncio.sleep(interval)

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _check(self, binding: CompiledBinding, tier: CompiledTier) -> None:
        rt = self.rt
        h = rt.health(binding, tier)
        seen = h.transition_count
        self.checks += 1
        sent = rt.probe_tier(binding, tier)  # with its first usable key, for a tier with several
        failure = await self._call(sent)
        now, wall = rt.clock(), time.time()
        if failure is not None and tier.keys is not None and failure.reason == classify.AUTH_ERROR:
            # That key is refused (a check is its own confirmation): it is disabled, and
            # the tier is checked again with its next key after the cooldown.
            key = next(k for k in tier.keys if k.credential == sent.credential)
            breaker.disable(rt.key_health(binding, tier, key.index), failure.trail_text(), key.fingerprint(), wall)
            rt.settle_keys(binding, tier)
            failure = classify.Failure(classify.SERVER_ERROR, f"key {key.index}: {failure.trail_text()}", failure.status)
        if failure is None:
            breaker.probe_passed(h, wall)
            outcome = "passed"
        else:
            breaker.probe_failed(
                h, binding.breaker, failure.cls, failure.trail_text(), now, wall, failure.retry_after, tier.fingerprint()
            )
            outcome = failure.cls
        rt.metrics.tier(binding, tier).probe(outcome)
        rt.note_transitions(binding, tier, h, seen)
        log.info(
            "probe",
            extra={"switchyard": {"binding": binding.name, "tier": tier.index, "source": tier.source, "outcome": outcome,
                                  "detail": failure.trail_text() if failure else None}},
        )

    async def _call(self, tier: CompiledTier, *, model_listed: bool = False) -> classify.Failure | None:
        """The prompt-free check: None when the tier answers with its key. With
        ``model_listed``, its catalog must also hold the tier's model."""
        call = probe_call(tier, whole_list=model_listed)
        limit = min(tier.timeouts.first_byte_seconds, PROBE_TIMEOUT_CAP_SECONDS)
        try:
            got = await fetch(
                self.rt.upstreams, call, connect_seconds=tier.timeouts.connect_seconds, total_seconds=limit,
                allow_link_local=tier.allow_link_local,
            )
        except UpstreamTimeout:
            return classify.Failure(classify.TIMEOUT, "check")
        except UpstreamConnectError as exc:
            return classify.Failure(classify.CONNECT_ERROR, str(exc))
        except UpstreamError:
            return classify.Failure(classify.CONNECT_ERROR, "reset")
        if got.status < 300:
            if model_listed and not model_in_catalog(tier, got.body):
                return classify.Failure(classify.NOT_FOUND, "model not listed", 404)
            return None
        info = adapter_for(tier.protocol).read_error(got.status, error_text(got.body, tier), got.headers)
        failure = classify.from_status(
            got.status,
            got.headers,
            wall_now=time.time(),
            quota=info.quota,
            auth=info.auth,
            body_retry_after=info.retry_after,
            model_not_found=True,  # the check names nothing but the tier's own model (or its catalog)
        )
        if failure.reason == classify.CLIENT_ERROR:  # the check itself was refused: count it as not back yet
            return classify.Failure(classify.SERVER_ERROR, f"check {got.status}", got.status)
        return failure


def model_in_catalog(tier: CompiledTier, body: bytes) -> bool:
    """Does a 2xx check answer list (or, for Gemini, describe) the tier's model? A body
    this cannot read counts as yes: only a readable catalog without it is evidence."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return True
    if not isinstance(obj, dict):
        return True
    want = tier.model.removeprefix("models/")
    if tier.protocol == "gemini":
        return True  # the check asked for the model itself and got it
    data = obj.get("data")
    if not isinstance(data, list):
        return True
    ids = {str(m.get("id", "")).removeprefix("models/") for m in data if isinstance(m, dict)}
    return want in ids
