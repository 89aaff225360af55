"""The compiled-config contract between the compiler and the sidecar.

The sidecar owns this contract; the compiler (``switchyard.compiler``) produces it, the
operator writes it into each namespace's config Secret (``delivery.py``: the bundle the
sidecar reads from its mounted files; ``PUT /admin/config`` only in the explicit push
mode for development) and standalone mode hands it over directly.
It does not depend on Kubernetes types: everything a request needs is resolved here
(URLs, credentials, models, the capability profile of each tier), so the request path
does no lookups.

``schema_version`` says which shape this is. A sidecar refuses a config whose
schema_version it does not know and keeps serving the previous one (the operator sees
the 409 and reports it). ``version`` is a content hash computed by the compiler; pushing
the same version twice is a no-op.

Credentials are ``SecretStr``: they never appear in ``repr``, logs or the admin status
view. They are serialised in clear only when the compiler renders the config for the
push (``to_wire``), which is the one place they must travel.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_serializer

SCHEMA_VERSION = 1

WireProtocol = Literal["openai-chat", "anthropic-messages", "gemini", "openai-responses"]
Action = Literal["strip", "map", "reject", "skip-tier"]
AuthStyle = Literal["bearer", "x-api-key", "x-goog-api-key", "none"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CompiledTimeouts(_Frozen):
    connect_seconds: float = 5.0
    first_byte_seconds: float = 60.0
    total_seconds: float = 600.0


class CompiledProfile(_Frozen):
    """A capability profile, flattened: what the tier supports and what to do otherwise."""

    name: str
    protocol: WireProtocol
    # Feature name (camelCase, as in the CRD) -> supported value: bool for on/off
    # features, int for counts/limits (None = unknown), str for reasoning support.
    features: dict[str, bool | int | str | None]
    # Feature name -> action for requests that use it while it is unsupported.
    on_unsupported: dict[str, Action]


class CompiledBreaker(_Frozen):
    consecutive_failures: int = 3
    cooldown_seconds: float = 30.0
    half_open_requests: int = 1
    probe: Literal["models", "none"] = "models"
    max_cooldown_seconds: float = 300.0
    max_retry_after_seconds: float = 300.0


class CompiledPrice(_Frozen):
    """A tier's price, resolved by the compiler: integers in millionths of ``currency`` per
    million tokens (the declared price times 10**6), which is also 10**-12 of the currency
    per token: a cost is ``tokens * price`` in those units, exact (pipeline/exchange.py)."""

    currency: str  # ISO 4217, e.g. USD
    input: int  # input tokens neither read from nor written to a cache
    output: int  # output tokens, reasoning included
    cached_input: int  # input tokens read from the prompt cache
    cache_write: int  # input tokens written to the prompt cache

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int, cache_write_tokens: int) -> int:
        """The cost of one answer in picos (10**-12) of ``currency``, exact. ``input_tokens``
        is all input, cache reads and writes included (as the sidecar's neutral usage
        counts it): the rest of it is priced at ``input``."""
        fresh = max(0, input_tokens - cached_input_tokens - cache_write_tokens)
        return (fresh * self.input + cached_input_tokens * self.cached_input + cache_write_tokens * self.cache_write
                + output_tokens * self.output)


def _absent(value: Any) -> bool:
    return value is None


def _reveal(v: SecretStr | None, info: Any) -> str | None:
    if v is None:
        return None
    ctx = info.context or {}
    return v.get_secret_value() if ctx.get("reveal_secrets") else "***"


class CompiledKey(_Frozen):
    """One key of a tier whose source lists several (``credentialRefs``), by its index in
    that list. ``problem`` set (reason: message, never a value) = this key did not resolve
    and is never sent; the tier's other keys still serve."""

    index: int
    credential: SecretStr | None = None
    problem: str | None = None

    @field_serializer("credential", when_used="always")
    def _reveal_only_for_wire(self, v: SecretStr | None, info: Any) -> str | None:
        return _reveal(v, info)

    def fingerprint(self) -> str:
        """Hash of this key (its value included): a key disabled for being refused is
        enabled again when this changes (the Secret rotated). Kept in memory only."""
        data = self.model_dump(mode="json", context={"reveal_secrets": True})
        return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
class CompiledRateLimits(_Frozen):
    """Limits over time windows (AssistantBinding.spec.limits; ``routing/limits.py``), for the
    whole fleet: each sidecar enforces its share (limit / pods). None: no limit."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None


class CompiledLimits(CompiledRateLimits):
    per_caller: CompiledRateLimits | None = None  # the same limits for each caller separately


class CompiledTier(_Frozen):
    """One resolved tier of a chain. ``problem`` set = not resolvable; never sent to."""

    index: int  # 0 = primary
    source: str  # ModelSource name (namespace implied by the binding)
    provider: str
    protocol: WireProtocol
    base_url: str
    model: str
    auth: AuthStyle = "bearer"
    credential: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: CompiledTimeouts = Field(default_factory=CompiledTimeouts)
    profile: CompiledProfile
    problem: str | None = None
    # Features the binding's `requires` asks for that this tier's profile lacks; such a
    # tier is skipped unless `degradable` (the binding allows degrading and the profile
    # strips or maps every missing feature).
    incompatible: list[str] = Field(default_factory=list)
    degradable: bool = False
    # spec.network.allowLinkLocal of the source: without it, a baseURL name that resolves
    # to a link-local or cloud metadata address is refused at connect time (upstream.py).
    allow_link_local: bool = False
    # spec.network.maxConnections of the source: the size of this sidecar's pool for it.
    max_connections: int = 256
    # The model's price (ModelSource spec.pricing, else the profile's): the sidecar counts
    # each answer's cost with it. Left out of the wire when unset, so a config without
    # prices serialises (and hashes) as before prices existed.
    pricing: CompiledPrice | None = Field(default=None, exclude_if=_absent)
    # Every key of a source with several (credentialRefs of 2 or more), in order; the
    # sidecar tries them first usable first (docs/several-keys.md). ``credential`` then
    # holds the first one that resolved. None (and absent from the JSON, so a single-key
    # tier serialises, and versions, exactly as before keys existed): one key, ``credential``.
    keys: list[CompiledKey] | None = Field(default=None, exclude_if=_absent)

    @field_serializer("credential", when_used="always")
    def _reveal_only_for_wire(self, v: SecretStr | None, info: Any) -> str | None:
        return _reveal(v, info)

    def key_slots(self) -> list[CompiledKey]:
        """The tier's keys by index: ``keys``, or its one ``credential`` as key 0."""
        if self.keys is not None:
            return self.keys
        return [CompiledKey(index=0, credential=self.credential)]

    def secrets(self) -> tuple[str, ...]:
        """Every key value this tier holds (for scrubbing upstream text)."""
        values = [k.credential.get_secret_value() for k in self.keys or () if k.credential is not None]
        if self.credential is not None:
            values.append(self.credential.get_secret_value())
        return tuple(dict.fromkeys(v for v in values if v))

    def with_key(self, key: CompiledKey) -> CompiledTier:
        """This tier sending with ``key`` (one attempt on a source with several keys)."""
        return self.model_copy(update={"credential": key.credential})

    @property
    def key(self) -> str:
        """Identity of this tier for breaker state: survives config swaps that keep it."""
        return f"{self.source}|{self.base_url}|{self.model}"

    def fingerprint(self) -> str:
        """Hash of everything about this tier (credential included) but its price: a tier
        disabled for a permanent failure is enabled again when this changes (a new key, a
        new model...); a new price is no reason to try it again."""
        # A tier with several keys holds each in ``keys``; ``credential`` (the key one
        # attempt sends, ``with_key``) is left out so every attempt's copy has the same.
        exclude = {"pricing", "credential"} if self.keys is not None else {"pricing"}
        data = self.model_dump(mode="json", context={"reveal_secrets": True}, exclude=exclude)
        return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class CompiledBinding(_Frozen):
    name: str
    namespace: str = "default"
    aliases: list[str]
    unbound: bool = False  # spec.primary explicitly null (or cleared): answer a clear error
    tiers: list[CompiledTier] = Field(default_factory=list)
    fallback_on: list[str] = Field(
        default_factory=lambda: ["429", "5xx", "timeout", "connect-error", "empty-response"]
    )
    breaker: CompiledBreaker = Field(default_factory=CompiledBreaker)
    deadline_seconds: float | None = None  # bound on the whole chain per request
    callers: list[str] | None = None  # callers served (None: any); see routing/caller.py
    # The binding's metadata.generation (cluster mode; None standalone). When it changes
    # between two configs, the sidecar puts the binding's tiers it had disabled for a
    # permanent failure back in service ("disabled until the binding changes"): the
    # operator asks for that reset through the config, never through an admin call.
    generation: int | None = None
    # spec.limits; absent from the wire (and the version hash) when unset, so a binding
    # without limits compiles exactly as before.
    limits: CompiledLimits | None = Field(default=None, exclude_if=_absent)


class CompiledConfig(_Frozen):
    schema_version: int = SCHEMA_VERSION
    version: str = ""
    bindings: list[CompiledBinding] = Field(default_factory=list)

    def to_wire(self) -> bytes:
        """The push body: credentials in clear. Only for PUT /admin/config."""
        return orjson.dumps(self.model_dump(mode="json", context={"reveal_secrets": True}))

    def redacted(self) -> dict[str, Any]:
        """A view safe to show anywhere: credentials replaced by ``***``."""
        return self.model_dump(mode="json")

    @classmethod
    def from_wire(cls, body: bytes | str | dict[str, Any]) -> CompiledConfig:
        data = body if isinstance(body, dict) else orjson.loads(body)
        return cls.model_validate(data)

    def with_version(self) -> CompiledConfig:
        """Return a copy whose ``version`` is the hash of its content (secrets included)."""
        content = self.model_dump(mode="json", context=_REVEAL, exclude={"version": True, "bindings": _NO_PROFILES})
        digest = spliced_digest(
            content, zip(content["bindings"], self.bindings, strict=True),
            lambda: self.model_dump(mode="json", context=_REVEAL, exclude={"version"}),
        )
        return self.model_copy(update={"version": digest[:16]})


# The version hash is sha256 of the content's JSON with sorted keys, credentials in clear.
# Thousands of tiers share a handful of profiles, and dumping each tier's profile is a
# third of a compile (bench/operator_scale.py): the content is dumped without them, each
# distinct profile is serialised once and its bytes spliced in where its tiers hold a
# placeholder. The bytes hashed are the same as the full dump's (sorted keys, compact).
_REVEAL = {"reveal_secrets": True}
_NO_PROFILES: dict[Any, Any] = {"__all__": {"tiers": {"__all__": {"profile": True}}}}
_MARK = "\ue000"  # private use: placeholders are whole JSON strings that name this process' nonce
_NONCE = secrets.token_hex(8)
_PLACEHOLDER = re.compile(f'"{_MARK}{_NONCE}-([0-9]+){_MARK}"'.encode())


def spliced_digest(
    content: dict[str, Any],
    bindings: Iterable[tuple[dict[str, Any], CompiledBinding]],
    full: Callable[[], dict[str, Any]],
) -> str:
    """sha256 hex of ``orjson.dumps(full(), OPT_SORT_KEYS)``, from ``content``: the same dump
    with every tier's profile left out. ``bindings`` pairs each dumped binding of
    ``content`` with its model; their tiers get the placeholder of their profile (the
    dicts are changed). Should a value of the content spell a placeholder, the count of
    replacements gives it away and ``full()`` is dumped instead."""
    index: dict[int, int] = {}
    parts: list[bytes] = []
    placed = 0
    for dumped, binding in bindings:
        for tier_dump, tier in zip(dumped["tiers"], binding.tiers, strict=True):
            i = index.get(id(tier.profile))
            if i is None:
                i = index[id(tier.profile)] = len(parts)
                parts.append(orjson.dumps(tier.profile.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS))
            tier_dump["profile"] = f"{_MARK}{_NONCE}-{i}{_MARK}"
            placed += 1
    raw = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    if placed:
        replaced = 0

        def splice(m: re.Match[bytes]) -> bytes:
            nonlocal replaced
            replaced += 1
            i = int(m.group(1))
            return parts[i] if i < len(parts) else m.group(0)

        raw = _PLACEHOLDER.sub(splice, raw)
        if replaced != placed:
            raw = orjson.dumps(full(), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()
