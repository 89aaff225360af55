"""The status-report contract: what a sidecar answers on ``GET /admin/status``.

``config.py`` is what goes into a sidecar (the compiled config); this module is what
comes back out: the config version it runs and, per binding and tier, the breaker state,
the last failure and the tier that served the last request. The sidecar builds it from
its runtime state (``sidecar/admin.py``); the operator parses it (``operator/push.py``)
and aggregates the reports of a binding's pods into status (``operator/health.py``). The
state names are defined here once: the breaker (``routing/breaker.py``), the metrics
(``metrics.py``) and the CRD's status schema (``api/crd.py``) take them from here.

The wire shape is exactly the JSON sidecars returned before this module existed, field
for field, plus ``report_version`` (and, per binding, ``usage`` once it served tokens); conditional fields (``retry_in_seconds`` and
``probing`` while open, ``disabled_reason``, ``rate_limited_for_seconds``) are left out
when they do not apply, as before. Readers are lenient where that is safe, so old and
new sidecars and operators interoperate:

- unknown fields are ignored (a newer sidecar may add some);
- a tier state the reader does not know reads as ``None``: that tier's state is "not
  known to this reader", never guessed; the rest of the report still counts (the failure
  class is free text on the wire; readers keep only the ``FailureClass`` values);
- ``report_version`` absent means 1 (sidecars older than the field send this shape).

``report_version`` changes only with an incompatible change (a field removed, renamed or
given another meaning); additions do not change it. A reader given a report_version newer
than ``REPORT_VERSION`` refuses the whole report (``parse_report`` raises ``ReportError``):
the operator records that as a problem of that pod, whose health is then not counted, as
for a sidecar it cannot reach, and keeps pushing config to it. The same rule as the
config's ``schema_version``, which a sidecar refuses when it is newer than it knows.

Nothing in a report is secret (credentials are never part of it), and ``ReportError``
messages name where a report is malformed, never the value found there.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

REPORT_VERSION = 1


class TierState(StrEnum):
    """A tier's state in one sidecar, as reported (status, metric)."""

    CLOSED = "closed"  # in service
    OPEN = "open"  # breaker open: skipped until the cooldown is over and a check passes
    HALF_OPEN = "half-open"  # trial requests decide
    RATE_LIMITED = "rate-limited"  # waiting out the upstream's Retry-After (over closed or half-open)
    DISABLED = "disabled"  # a permanent failure: out until its config changes or an admin resets it


class FailureClass(StrEnum):
    """What a failure does to a tier (``routing/classify.py`` decides the class)."""

    TRANSIENT = "transient"  # counts toward the breaker
    RATE_LIMITED = "rate-limited"  # keeps the tier out for as long as the upstream asked
    PERMANENT = "permanent"  # disables the tier


TIER_STATES: tuple[str, ...] = tuple(s.value for s in TierState)
FAILURE_CLASSES: tuple[str, ...] = tuple(c.value for c in FailureClass)

E = TypeVar("E", bound=StrEnum)


def _known(enum: type[E]) -> Callable[[Any], E | None]:
    def read(value: Any) -> E | None:
        if value is None or isinstance(value, enum):
            return value
        try:
            return enum(value)
        except (ValueError, TypeError):
            return None  # a name this reader does not know (a newer sidecar): not guessed

    return read


KnownState = Annotated[TierState | None, BeforeValidator(_known(TierState))]


def _absent(value: Any) -> bool:
    return value is None


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class ReportedTransition(_Part):
    """One breaker transition (the last five are reported, oldest first)."""

    at: float  # wall clock, seconds
    from_state: KnownState = Field(alias="from")
    to_state: KnownState = Field(alias="to")
    reason: str = ""


class ReportedBreaker(_Part):
    """One tier's health in one sidecar."""

    state: KnownState = TierState.CLOSED
    consecutive_failures: int = 0
    last_failure: str | None = None  # e.g. "503", "timeout", "401"
    # A FailureClass value for a failure that counted against the tier; a failed prompt-free
    # check may also say "client" or "deadline". Free text for that reason: readers take
    # only the FailureClass values.
    last_failure_class: str | None = None
    last_failure_at: float | None = None  # wall clock, seconds
    last_success_at: float | None = None  # wall clock, seconds
    transitions: list[ReportedTransition] = Field(default_factory=list)
    # Only while the breaker is open:
    retry_in_seconds: float | None = Field(default=None, exclude_if=_absent)
    probing: bool | None = Field(default=None, exclude_if=_absent)  # a prompt-free check is in flight
    # Only while disabled:
    disabled_reason: str | None = Field(default=None, exclude_if=_absent)
    # Only while the upstream's Retry-After runs:
    rate_limited_for_seconds: float | None = Field(default=None, exclude_if=_absent)
    # True: the wait (or the suspicion being checked) comes from another pod's hint
    # (docs/shared-health.md), not from this sidecar's own answers; the operator shares
    # only what a pod saw itself.
    shared: bool | None = Field(default=None, exclude_if=_absent)


class KeyState(StrEnum):
    """One key's state in one sidecar, for a tier whose source has several keys."""

    USABLE = "usable"  # sent when its turn comes (keys are tried in order)
    RATE_LIMITED = "rate-limited"  # waiting out a 429 on this key; the tier's next key serves
    DISABLED = "disabled"  # refused (401/403, confirmed by a prompt-free check) until the key changes
    UNRESOLVABLE = "unresolvable"  # its Secret or key is missing or not allowed (problem says which)


KEY_STATES: tuple[str, ...] = tuple(s.value for s in KeyState)
KnownKeyState = Annotated[KeyState | None, BeforeValidator(_known(KeyState))]


class ReportedKey(_Part):
    """One key of a tier with several, by its index in the source's credentialRefs.
    Never the key itself: its state, why, and until when."""

    index: int
    state: KnownKeyState = KeyState.USABLE
    problem: str | None = Field(default=None, exclude_if=_absent)  # unresolvable: reason: message
    disabled_reason: str | None = Field(default=None, exclude_if=_absent)
    rate_limited_for_seconds: float | None = Field(default=None, exclude_if=_absent)
    rate_limited_until: float | None = Field(default=None, exclude_if=_absent)  # wall clock, seconds
    last_failure: str | None = Field(default=None, exclude_if=_absent)
    last_failure_at: float | None = Field(default=None, exclude_if=_absent)  # wall clock, seconds
    shared: bool | None = Field(default=None, exclude_if=_absent)  # as ReportedBreaker.shared


class ReportedTier(_Part):
    """One tier of a binding's chain, as this sidecar runs it."""

    tier: int  # 0 = primary
    source: str
    provider: str | None = None
    protocol: str | None = None
    model: str
    resolvable: bool = True
    problem: str | None = None  # why not resolvable (reason: message; never a secret)
    breaker: ReportedBreaker = Field(default_factory=ReportedBreaker)
    # Only for a tier whose source has several keys (an addition: report_version stays 1).
    keys: list[ReportedKey] | None = Field(default=None, exclude_if=_absent)


class ReportedLastUsed(_Part):
    """The tier that served this binding's most recent request in this sidecar."""

    tier: int
    source: str
    model: str
    at: float | None = None  # wall clock, seconds


class ReportedTokens(_Part):
    """Tokens the upstreams reported for a binding: ``input`` is all input (cache reads and
    writes included), ``output`` all output (reasoning included)."""

    input: int = Field(default=0, ge=0)
    output: int = Field(default=0, ge=0)
    cached_input: int = Field(default=0, ge=0)
    cache_write: int = Field(default=0, ge=0)
    reasoning: int = Field(default=0, ge=0)


class ReportedUsage(_Part):
    """A binding's usage in this sidecar since it started (over every tier, model and
    caller): the same counts as its ``switchyard_usage_tokens_total`` and
    ``switchyard_cost_total`` series. ``cost``: per currency, an exact decimal string
    (``picos_text``); a reader that cannot read an amount leaves it out."""

    tokens: ReportedTokens = Field(default_factory=ReportedTokens)
    cost: dict[str, str] = Field(default_factory=dict)


def picos_text(picos: int) -> str:
    """An amount kept in integer picos (10**-12) as an exact decimal string, e.g. "0.002775000000"."""
    return f"{Decimal(picos).scaleb(-12):f}"
class ReportedWindow(_Part):
    """One limit of a binding (``spec.limits``) in one sidecar: what it used of it in the
    current window. Windows are aligned to the wall clock (UTC minutes, UTC days), so the
    reports of a binding's pods for the same ``window_start`` add up to the fleet's use."""

    limit: int  # the limit as the binding states it (for the whole fleet)
    share: float  # this pod's share of it (limit / pods, at least 1)
    used: int  # counted in this window: requests admitted, or tokens (input + output)
    window_start: float  # wall clock, seconds (start of the UTC minute or day)
    window_seconds: float  # 60 or 86400


class ReportedLimits(_Part):
    """A binding's limits in one sidecar (docs/limits.md). Keys of ``windows``:
    requestsPerMinute, tokensPerMinute, tokensPerDay (those the binding sets)."""

    pods: int = 1  # pods this sidecar believes share the limits
    windows: dict[str, ReportedWindow] = Field(default_factory=dict)


class ReportedBinding(_Part):
    name: str
    namespace: str | None = None  # None: not said (sidecars always say it)
    aliases: list[str] = Field(default_factory=list)
    unbound: bool = False
    last_used: ReportedLastUsed | None = None
    tiers: list[ReportedTier] = Field(default_factory=list)
    # Absent until the binding served an answer with usage (and from older sidecars).
    usage: ReportedUsage | None = Field(default=None, exclude_if=_absent)
    limits: ReportedLimits | None = Field(default=None, exclude_if=_absent)  # only for a binding with limits

    def belongs_to(self, namespace: str, name: str) -> bool:
        return self.name == name and self.namespace in (None, namespace)


class SidecarReport(_Part):
    """The whole ``GET /admin/status`` answer."""

    configured: bool = False  # False: no config received yet (version is None)
    version: str | None = None  # the compiled config's version it runs
    schema_version: int | None = None  # the compiled-config schema it understands (config.SCHEMA_VERSION)
    report_version: int = REPORT_VERSION  # the shape of this report; see the module docstring
    loaded_at: float | None = None  # wall clock, seconds: when that config was installed
    draining: bool = False
    bindings: list[ReportedBinding] = Field(default_factory=list)
    # Config from files (the mounted config Secret): "files"; pushed: "push" (absent in
    # reports of older sidecars). ``config_error``: why the last file read was not
    # installed (the previous config keeps serving); names a place, never a value.
    config_source: str | None = Field(default=None, exclude_if=_absent)
    config_error: str | None = Field(default=None, exclude_if=_absent)

    @field_validator("report_version")
    @classmethod
    def _understood(cls, v: int) -> int:
        if v > REPORT_VERSION:
            raise ValueError(f"report_version {v} is newer than this reader understands ({REPORT_VERSION})")
        if v < 1:
            raise ValueError(f"report_version {v} is not a version")
        return v

    @property
    def running(self) -> str | None:
        """The config version the sidecar runs (None when it has none)."""
        return self.version if self.configured else None

    def binding(self, namespace: str, name: str) -> ReportedBinding | None:
        return next((b for b in self.bindings if b.belongs_to(namespace, name)), None)

    def to_wire(self) -> dict[str, Any]:
        """The JSON body (a dict for ``orjson.dumps``)."""
        return self.model_dump(mode="json", by_alias=True)


class ReportError(ValueError):
    """A report that cannot be read: malformed, or a newer ``report_version``.

    The message says where (``bindings.0.tiers.1.tier: Input should be a valid integer``),
    never the value found there."""

    def __init__(self, message: str, *, newer_version: bool = False) -> None:
        super().__init__(message)
        self.newer_version = newer_version


def parse_report(data: Any) -> SidecarReport:
    """Read a decoded ``GET /admin/status`` body; raises ``ReportError``."""
    if not isinstance(data, dict):
        raise ReportError("the report is not a JSON object")
    version = data.get("report_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > REPORT_VERSION:
        raise ReportError(
            f"report_version {version} is newer than this reader understands ({REPORT_VERSION})", newer_version=True
        )
    try:
        return SidecarReport.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        # from None: the ValidationError's own text quotes the values it found.
        raise ReportError(f"{where}: {first['msg']}{more}") from None
