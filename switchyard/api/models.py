"""The three custom resources of Switchyard, as pydantic v2 models.

These models are the single source of truth for the resources' shape: the CRDs in
``crds/`` are generated from them (``switchyard.api.crd``), the standalone loader
validates manifests with them, and the compiler (``switchyard.compiler``) reads them.
Field names follow the Kubernetes convention (camelCase on the wire); every field
carries a description that ends up in the CRD and in ``docs/resources.md``.

Group ``switchyard.dev``, version ``v1alpha1``, all kinds namespaced.

What lives here and not in the compiler: shape, defaults, enums and ranges, i.e.
everything the API server can enforce by itself. What needs a lookup (does the
referenced source exist, is the secret key present) lives in the compiler.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from switchyard.sidecar.contract.delivery import selector_matches

GROUP = "switchyard.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class _Spec(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


# --------------------------------------------------------------------------- enums


class Provider(str, Enum):
    """Which kind of upstream a ModelSource is; decides defaults and wire protocol."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    OPENROUTER = "openrouter"
    OPENAI_COMPATIBLE = "openai-compatible"


class WireProtocol(str, Enum):
    """An API shape spoken on the wire (to clients or to upstreams)."""

    OPENAI_CHAT = "openai-chat"
    ANTHROPIC_MESSAGES = "anthropic-messages"
    GEMINI = "gemini"
    OPENAI_RESPONSES = "openai-responses"


class Action(str, Enum):
    """What to do with a request feature that a destination cannot honour."""

    STRIP = "strip"  # drop it, say so
    MAP = "map"  # closest equivalent, say so
    REJECT = "reject"  # clear 4xx to the client
    SKIP_TIER = "skip-tier"  # this tier is not feature-equivalent; try the next


class ReasoningSupport(str, Enum):
    """How a destination takes reasoning/thinking controls."""

    NONE = "none"
    EFFORT = "effort"  # OpenAI reasoning_effort: minimal/low/medium/high
    BUDGET = "budget"  # Anthropic thinking.budget_tokens / Gemini thinkingConfig.thinkingBudget


PROVIDER_PROTOCOL: dict[Provider, WireProtocol] = {
    Provider.OPENAI: WireProtocol.OPENAI_CHAT,
    Provider.OPENROUTER: WireProtocol.OPENAI_CHAT,
    Provider.OPENAI_COMPATIBLE: WireProtocol.OPENAI_CHAT,
    Provider.ANTHROPIC: WireProtocol.ANTHROPIC_MESSAGES,
    Provider.GEMINI: WireProtocol.GEMINI,
}
"""The protocol a provider is spoken to in by default."""

PROVIDER_PROTOCOLS: dict[Provider, tuple[WireProtocol, ...]] = {
    Provider.OPENAI: (WireProtocol.OPENAI_CHAT, WireProtocol.OPENAI_RESPONSES),
    Provider.OPENROUTER: (WireProtocol.OPENAI_CHAT,),
    Provider.OPENAI_COMPATIBLE: (WireProtocol.OPENAI_CHAT, WireProtocol.OPENAI_RESPONSES),
    Provider.ANTHROPIC: (WireProtocol.ANTHROPIC_MESSAGES,),
    Provider.GEMINI: (WireProtocol.GEMINI,),
}
"""The protocols a ModelSource of each provider may choose with `spec.protocol`."""

# Each default follows the provider's official SDK convention for "base URL", so a
# value copied from an SDK's documentation works unchanged: OpenAI-style URLs end in
# /v1, Anthropic's and Gemini's are the server root (the adapters add /v1/messages and
# /v1beta/models/...).
DEFAULT_BASE_URL: dict[Provider, str | None] = {
    Provider.OPENAI: "https://api.openai.com/v1",
    Provider.ANTHROPIC: "https://api.anthropic.com",
    Provider.GEMINI: "https://generativelanguage.googleapis.com",
    Provider.OPENROUTER: "https://openrouter.ai/api/v1",
    Provider.OPENAI_COMPATIBLE: None,  # vLLM, Ollama, LM Studio, llama.cpp: no sane default
}

# Header names that carry credentials. They may never appear in `spec.headers`
# (promise 6: secrets live in Secrets), and are never forwarded from clients.
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie"}
)

# What HTTP allows in a header (RFC 9110): a name is a token; a value is visible ASCII,
# spaces and tabs. A control character (CR, LF, NUL...) in a value would be a header
# injection, and aiohttp refuses to send it: every request to the tier would fail.
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
HEADER_VALUE = r"^[\t -~]*$"

FAILURE_REASONS = ("429", "5xx", "timeout", "connect-error", "empty-response")
"""The failure kinds `fallbackOn` may list (see docs/breaker.md)."""

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")

Name = Annotated[
    str,
    Field(min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN.pattern),
]


# ---------------------------------------------------------------- shared pieces


class ObjectMeta(BaseModel):
    """The part of Kubernetes' ObjectMeta that Switchyard reads."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)

    name: Name
    namespace: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None
    resource_version: str | None = None


class LocalRef(_Spec):
    """A reference to another object in the same namespace, by name."""

    name: Name = Field(description="Name of the referenced object in the same namespace.")


MAX_CREDENTIALS = 8
"""At most this many keys per ModelSource (``credentialRefs``)."""


class CredentialRef(_Spec):
    """Where a ModelSource's API key comes from.

    Either a key of a Secret in the same namespace (`name` + `key`), or, in standalone
    mode only, an environment variable (`env`). Omit the whole ref for upstreams that
    need no key (a local Ollama, say).
    """

    name: Name | None = Field(
        default=None,
        description="Name of a Secret in the same namespace. In a cluster the Secret must be labelled "
        "switchyard.dev/credential: \"true\" (the operator reads no other Secret; docs/security.md).",
    )
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Key inside the Secret's data that holds the API key.",
    )
    env: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Standalone mode only: name of an environment variable holding the API key.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> CredentialRef:
        secret = self.name is not None or self.key is not None
        if secret and self.env is not None:
            raise ValueError("set either {name, key} (a Secret) or {env}, not both")
        if secret and (self.name is None or self.key is None):
            raise ValueError("a Secret reference needs both `name` and `key`")
        if not secret and self.env is None:
            raise ValueError("set {name, key} (a Secret) or {env} (standalone only)")
        return self


class Timeouts(_Spec):
    """Per-attempt time limits for one upstream, in seconds."""

    connect_seconds: float = Field(
        default=5.0, gt=0, le=300, description="Time to open the TCP/TLS connection. Default 5."
    )
    first_byte_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description=(
            "Time from sending the request to the first byte of the response body. For a "
            "non-streaming request that is the whole answer, so raise it for long "
            "non-streaming generations. Default 60."
        ),
    )
    total_seconds: float = Field(
        default=600.0,
        gt=0,
        le=86400,
        description="Time for the whole attempt, streaming included. Default 600.",
    )


class ModelProfile(_Spec):
    """A per-model CapabilityProfile override."""

    model: str = Field(
        min_length=1,
        max_length=256,
        description="Model id this override applies to; a trailing `*` matches a prefix.",
    )
    capability_profile_ref: LocalRef = Field(description="The CapabilityProfile for this model.")


# ------------------------------------------------------------------- pricing

MAX_PRICE_PER_MILLION = 1_000_000
"""Upper bound of a declared price (per million tokens): far above any real one, it keeps
a typo (a price per token written as per million, say) from looking sane."""

_PRICE = {"ge": 0, "le": MAX_PRICE_PER_MILLION}


class Pricing(_Spec):
    """What a model costs, per million tokens, in one currency; declared by the user (no
    price list is fetched from anywhere). Read to six decimals. The sidecar counts each
    answer's cost from its token counts (docs/usage-and-cost.md)."""

    currency: str = Field(
        default="USD",
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code of the currency the prices are in, e.g. USD or EUR. Default USD.",
    )
    input_per_million: float = Field(
        **_PRICE, description="Price of one million input tokens that were not read from or written to a cache."
    )
    output_per_million: float = Field(
        **_PRICE, description="Price of one million output tokens (reasoning tokens included)."
    )
    cached_input_per_million: float | None = Field(
        default=None, **_PRICE,
        description="Price of one million input tokens read from the provider's prompt cache. Unset: inputPerMillion.",
    )
    cache_write_per_million: float | None = Field(
        default=None, **_PRICE,
        description="Price of one million input tokens written to the provider's prompt cache (Anthropic's "
        "cache_creation_input_tokens). Unset: inputPerMillion.",
    )


class ModelPricing(Pricing):
    """The price of the models of a ModelSource that match ``model``."""

    model: str = Field(
        min_length=1,
        max_length=256,
        description="Model id this price applies to; a trailing `*` matches a prefix (`*` alone: every model).",
    )


# ------------------------------------------------------------------ ModelSource


class NetworkPolicy(_Spec):
    """Where a ModelSource may send its requests and credential, beyond the safe default.

    By default the compiler refuses a baseURL on a link-local or cloud metadata address
    (169.254.0.0/16, fe80::/10, fd00:ec2::254, metadata.google.internal) and plain http
    to anything but loopback, private addresses and in-cluster names; the tier is then
    unresolvable with reason LinkLocalNotAllowed or InsecureHTTPNotAllowed.
    """

    allow_link_local: bool = Field(
        default=False,
        description="Allow a link-local or cloud metadata address as baseURL. Default false.",
    )
    allow_insecure_http: bool = Field(
        default=False,
        alias="allowInsecureHTTP",
        description=(
            "Allow plain http to a host that is not loopback, private or in-cluster (the key "
            "travels in clear). Default false."
        ),
    )
    max_connections: int = Field(
        default=256,
        ge=1,
        le=10000,
        description=(
            "Connections one sidecar keeps open to this source at most (its pool). A request "
            "that finds the pool full waits briefly for a slot, then moves on to the next tier "
            "('busy'): a full pool is the gateway's limit, never held against the source. "
            "Default 256."
        ),
    )


class ModelSourceSpec(_Spec):
    """One concrete upstream: a provider endpoint with its credential."""

    provider: Provider = Field(description="Kind of upstream; decides the wire protocol and defaults.")
    # Absent means the provider's default; not nullable: Kubernetes refuses null for an
    # enum field (null is not one of its values), so the model refuses it too.
    protocol: WireProtocol = Field(  # type: ignore[assignment]
        default=None,
        description=(
            "Wire protocol to speak to this upstream, when the provider serves more than one: "
            "openai and openai-compatible take openai-chat (the default: Chat Completions) or "
            "openai-responses (the Responses API, POST {baseURL}/responses; the default profile is "
            "then builtin-openai-responses, or builtin-openai-compatible-responses). Other "
            "providers speak only their own protocol. Unset: the provider's default, except that "
            "an openai-compatible source without it speaks its profile's protocol."
        ),
    )
    base_url: str | None = Field(
        default=None,
        alias="baseURL",
        max_length=2048,
        description=(
            "Upstream base URL. Defaults per provider: openai https://api.openai.com/v1, "
            "anthropic https://api.anthropic.com, gemini https://generativelanguage.googleapis.com, "
            "openrouter https://openrouter.ai/api/v1; required for openai-compatible."
        ),
    )
    credential_ref: CredentialRef | None = Field(
        default=None,
        description=(
            "Where the API key comes from; omit for keyless local runtimes. Shorthand for a "
            "credentialRefs list of one; set one of the two, not both."
        ),
    )
    credential_refs: list[CredentialRef] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CREDENTIALS,
        description=(
            "Several API keys for this source, tried in order (docs/several-keys.md): a 429 "
            "on one key moves the request to the next key of the same source before the "
            "chain moves to its next tier; each key has its own rate-limit window and "
            "disabled state, reported by index (never by value). A key that does not "
            "resolve makes only that key unusable. 1 to 8 items."
        ),
    )
    default_model: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Model used by a binding tier that names no model.",
    )
    models: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        default=None,
        max_length=1000,
        description="Optional allow-list of model ids this source may serve.",
    )
    capability_profile_ref: LocalRef | None = Field(
        default=None,
        description="CapabilityProfile for this source's models; default: the built-in profile of the provider.",
    )
    model_profiles: list[ModelProfile] = Field(
        default_factory=list,
        max_length=100,
        description="Per-model CapabilityProfile overrides; the first match wins.",
    )
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Per-attempt time limits.")
    headers: dict[str, Annotated[str, Field(max_length=4096, pattern=HEADER_VALUE)]] = Field(
        default_factory=dict,
        max_length=64,  # bounds the CRD's CEL rule on header names (API server cost budget)
        description="Extra non-secret request headers sent to this upstream (at most 64).",
    )
    network: NetworkPolicy | None = Field(
        default=None,
        description=(
            "Opt-ins for base URLs refused by default (see docs/reliability.md): link-local and "
            "cloud metadata addresses, and plain http to a host that is not local."
        ),
    )
    pricing: list[ModelPricing] = Field(
        default_factory=list,
        max_length=100,
        description=(
            "What this source charges per model, per million tokens; the first entry whose `model` "
            "matches wins, before the tier's CapabilityProfile `pricing`. Unpriced tiers count "
            "tokens and no cost (docs/usage-and-cost.md)."
        ),
    )

    @field_validator("base_url")
    @classmethod
    def _url_shape(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an absolute http(s) URL, e.g. https://api.openai.com/v1")
        return v.rstrip("/")

    @field_validator("headers")
    @classmethod
    def _no_credential_headers(cls, v: dict[str, str]) -> dict[str, str]:
        malformed = sorted(repr(h) for h in v if not re.match(HEADER_NAME, h))
        if malformed:
            raise ValueError(f"header names must be HTTP tokens (letters, digits and !#$%&'*+.^_`|~-): {', '.join(malformed)}")
        bad = sorted(h for h in v if h.lower() in CREDENTIAL_HEADERS)
        if bad:
            raise ValueError(
                f"header(s) {', '.join(bad)} carry credentials; use credentialRef (a Secret) instead"
            )
        return v

    @model_validator(mode="after")
    def _one_credential_field(self) -> ModelSourceSpec:
        if self.credential_ref is not None and self.credential_refs is not None:
            raise ValueError("set credentialRef or credentialRefs, not both")
        return self

    @property
    def credentials(self) -> list[CredentialRef]:
        """The source's keys in order, index 0 first: credentialRefs, or credentialRef as a
        list of one; empty for a keyless source."""
        if self.credential_refs is not None:
            return list(self.credential_refs)
        return [self.credential_ref] if self.credential_ref is not None else []

    @model_validator(mode="after")
    def _base_url_needed(self) -> ModelSourceSpec:
        if self.base_url is None and DEFAULT_BASE_URL[self.provider] is None:
            raise ValueError(f"baseURL is required for provider {self.provider.value}")
        return self

    @model_validator(mode="after")
    def _protocol_fits_provider(self) -> ModelSourceSpec:
        allowed = PROVIDER_PROTOCOLS[self.provider]
        if self.protocol is not None and self.protocol not in allowed:
            raise ValueError(
                f"protocol must be one the provider speaks: {self.provider.value} takes "
                f"{', '.join(p.value for p in allowed)}, not {self.protocol.value}"
            )
        return self

    @property
    def effective_protocol(self) -> WireProtocol:
        """The protocol the source is spoken to in: `protocol`, else the provider's default."""
        return self.protocol or PROVIDER_PROTOCOL[self.provider]

    @property
    def effective_base_url(self) -> str:
        url = self.base_url or DEFAULT_BASE_URL[self.provider]
        assert url is not None  # guaranteed by _base_url_needed
        return url


# ------------------------------------------------------------ CapabilityProfile


class Features(_Spec):
    """What a destination really supports. Absent = the built-in default for the protocol."""

    streaming: bool = Field(default=True, description="Server-sent-event streaming.")
    tools: bool = Field(default=True, description="Function/tool definitions and tool calls.")
    parallel_tool_calls: bool = Field(default=True, description="Several tool calls in one turn.")
    vision: bool = Field(default=True, description="Image inputs.")
    documents: bool = Field(default=False, description="Document (PDF) inputs.")
    audio: bool = Field(default=False, description="Audio inputs.")
    reasoning: ReasoningSupport = Field(
        default=ReasoningSupport.NONE, description="Reasoning/thinking controls: none, effort or budget."
    )
    json_mode: bool = Field(default=True, description="JSON mode (any JSON object).")
    structured_output: bool = Field(default=True, description="JSON-schema constrained output.")
    system_prompt: bool = Field(default=True, description="A system (or developer) prompt.")
    stop_sequences: int = Field(
        default=4, ge=0, le=1000, description="Maximum number of stop sequences; 0 = unsupported."
    )
    logprobs: bool = Field(default=False, description="Token log-probabilities.")
    multiple_choices: bool = Field(default=False, description="More than one choice per request (`n` > 1).")
    seed: bool = Field(default=False, description="Deterministic sampling seed.")
    top_k: bool = Field(default=False, description="top_k sampling.")
    max_context_tokens: int | None = Field(
        default=None, ge=1, description="Context window in tokens; unset = unknown."
    )
    max_output_tokens: int | None = Field(
        default=None, ge=1, description="Largest output a request may ask for; unset = unknown."
    )
    embedding_dimensions: int | None = Field(
        default=None,
        ge=1,
        le=65536,
        description=(
            "Size of the vectors this model's embeddings have (its embedding space). An embeddings "
            "request falls back only between tiers that declare the same value; unset = compatible "
            "with no other tier."
        ),
    )


FeatureName = Literal[
    "streaming",
    "tools",
    "parallelToolCalls",
    "vision",
    "documents",
    "audio",
    "reasoning",
    "jsonMode",
    "structuredOutput",
    "systemPrompt",
    "stopSequences",
    "logprobs",
    "multipleChoices",
    "seed",
    "topK",
    "maxContextTokens",
    "maxOutputTokens",
    "embeddingDimensions",
    "unknownFields",
]
FEATURE_NAMES: tuple[str, ...] = FeatureName.__args__  # type: ignore[attr-defined]


class CapabilityProfileSpec(_Spec):
    """What a destination supports, and what to do with each feature it does not."""

    protocol: WireProtocol = Field(description="Wire protocol the destination speaks.")
    features: Features = Field(default_factory=Features, description="Supported features.")
    on_unsupported: dict[FeatureName, Action] = Field(
        default_factory=dict,
        description=(
            "Per feature, the action when a request uses it and the destination does not "
            "support it: strip, map, reject or skip-tier. Unlisted features use the "
            "documented defaults (docs/capabilities.md)."
        ),
    )
    pricing: Pricing | None = Field(
        default=None,
        description=(
            "What the model behind this profile costs, per million tokens: the price of a tier "
            "whose ModelSource declares none for its model (docs/usage-and-cost.md)."
        ),
    )


# ------------------------------------------------------------- AssistantBinding


class TierRef(_Spec):
    """One tier of a binding's chain: a ModelSource and the model to ask it for."""

    source_ref: LocalRef = Field(description="The ModelSource serving this tier.")
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Model id to request; default: the source's defaultModel.",
    )

    def key(self) -> tuple[str, str | None]:
        return (self.source_ref.name, self.model)


class Breaker(_Spec):
    """Circuit-breaker settings, applied to each tier separately."""

    consecutive_failures: int = Field(
        default=3, ge=1, le=100, description="Consecutive failures that open the breaker. Default 3."
    )
    cooldown_seconds: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="How long an open breaker keeps the tier out before probing it. Default 30.",
    )
    half_open_requests: int = Field(
        default=1,
        ge=1,
        le=100,
        description="Requests let through while half-open; all must succeed to close. Default 1.",
    )
    probe: Literal["models", "none"] = Field(
        default="models",
        description=(
            "How an open tier is checked when its cooldown ends: `models` sends a list-models "
            "(or models.get) call with the tier's own credential and no prompt, and only a "
            "passed check lets half-open requests through; `none` lets the half-open requests "
            "through directly. Default models."
        ),
    )
    max_cooldown_seconds: float = Field(
        default=300.0,
        ge=1,
        le=86400,
        description=(
            "Cap of the cooldown, which doubles after each failed check or trial in a row. Default 300."
        ),
    )
    max_retry_after_seconds: float = Field(
        default=300.0,
        ge=1,
        le=86400,
        description=(
            "Cap of how long a rate-limited tier is skipped for (Retry-After, retry-after-ms, "
            "reset headers, RetryInfo). Default 300."
        ),
    )


class Requires(_Spec):
    """What the assistant needs from every tier of its chain (checked at apply time)."""

    tools: bool = Field(default=False, description="Function/tool calling.")
    parallel_tool_calls: bool = Field(default=False, description="Several tool calls in one turn.")
    vision: bool = Field(default=False, description="Image inputs.")
    reasoning: bool = Field(default=False, description="Reasoning/thinking controls.")
    structured_output: bool = Field(default=False, description="JSON-schema constrained output.")
    streaming: bool = Field(default=False, description="Server-sent-event streaming from the upstream itself.")
    min_context_tokens: int | None = Field(default=None, ge=1, description="Smallest context window acceptable.")
    min_output_tokens: int | None = Field(default=None, ge=1, description="Smallest output limit acceptable.")

    def needed(self) -> dict[str, bool | int]:
        """CapabilityProfile feature name -> what is needed (True, or a minimum)."""
        out: dict[str, bool | int] = {}
        for name in ("tools", "parallel_tool_calls", "vision", "reasoning", "structured_output", "streaming"):
            if getattr(self, name):
                out[to_camel(name)] = True
        if self.min_context_tokens:
            out["maxContextTokens"] = self.min_context_tokens
        if self.min_output_tokens:
            out["maxOutputTokens"] = self.min_output_tokens
        return out


class RateLimits(_Spec):
    """Request and token limits over time windows (docs/limits.md). Each unset field is no limit."""

    requests_per_minute: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description=(
            "Requests admitted per minute (a sliding window over UTC minutes). A request over it gets a 429 in "
            "the caller's protocol with Retry-After; no tier is tried."
        ),
    )
    tokens_per_minute: int | None = Field(
        default=None, ge=1, le=1_000_000_000,
        description=(
            "Tokens (input + output, as the upstream reported them) per minute, sliding window. Tokens are known "
            "only once an answer ends: a request that takes the count past the limit is served, the next one is refused."
        ),
    )
    tokens_per_day: int | None = Field(
        default=None, ge=1, le=100_000_000_000,
        description="Tokens (input + output) per UTC day: a daily budget, reset at 00:00 UTC.",
    )

    def is_set(self) -> bool:
        return any(v is not None for v in (self.requests_per_minute, self.tokens_per_minute, self.tokens_per_day))


class Limits(RateLimits):
    """The binding's limits: for all its traffic together, and optionally for each caller."""

    per_caller: RateLimits | None = Field(
        default=None,
        description=(
            "The same limits for each caller separately (claude-code, codex, openai-sdk..., a name sent in "
            "x-switchyard-caller). Callers the gateway does not recognise share one allowance: `unknown` (no name "
            "given) and `other` (a made-up name no binding lists). Callers name themselves: this is fairness, not "
            "access control; the binding-wide limits are the hard cap."
        ),
    )


class LabelSelectorRequirement(_Spec):
    """One matchExpressions entry of a Kubernetes label selector."""

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)


class LabelSelector(_Spec):
    """A Kubernetes label selector (matchLabels AND matchExpressions)."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)

    def matches(self, labels: dict[str, str]) -> bool:
        """Kubernetes semantics (an empty selector matches everything); the one definition
        lives in the sidecar's delivery contract, which the sidecar applies to its own pod."""
        return selector_matches(
            self.match_labels, [(r.key, r.operator, r.values) for r in self.match_expressions], labels
        )


class AssistantBindingSpec(_Spec):
    """An assistant's routing identity: its explicit chain of model sources."""

    selector: LabelSelector = Field(
        default_factory=LabelSelector,
        description="Pods whose sidecar serves this binding. Empty selects no pods (standalone ignores it).",
    )
    aliases: list[Annotated[str, Field(min_length=1, max_length=256)]] | None = Field(
        default=None,
        max_length=50,
        description=(
            "Model names clients use to reach this binding; a trailing `*` matches a prefix. "
            "Default: the binding's name."
        ),
    )
    primary: TierRef | None = Field(
        default=None,
        description="The primary tier. Explicit null means the binding is deliberately unbound.",
    )
    fallbacks: list[TierRef] = Field(
        default_factory=list, max_length=3, description="Up to three fallback tiers, tried in order."
    )
    fallback_on: list[Literal["429", "5xx", "timeout", "connect-error", "empty-response"]] = Field(
        default_factory=lambda: list(FAILURE_REASONS),
        description="Failures that move a request to the next tier.",
    )
    breaker: Breaker = Field(default_factory=Breaker, description="Per-tier circuit breaker.")
    deadline_seconds: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description=(
            "Bound on the whole chain for one request: each tier gets the smaller of its own "
            "timeouts and what is left, and a tier is not tried when too little is left. A "
            "client's own deadline (x-switchyard-deadline-seconds, or an SDK's timeout header) "
            "shortens it. Unset: only the tiers' own timeouts apply."
        ),
    )
    requires: Requires | None = Field(
        default=None,
        description=(
            "What the assistant needs. A tier whose CapabilityProfile lacks it is incompatible: "
            "reported at apply time (condition ChainCompatible, `switchyard check`, a kubectl "
            "warning) and skipped at request time."
        ),
    )
    allow_degrading: bool = Field(
        default=False,
        description=(
            "Let an incompatible tier serve when its profile says strip or map for every missing "
            "feature (the change is reported in x-switchyard-degraded). Default false: skip it."
        ),
    )
    callers: list[Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9._-]*$")]] | None = Field(
        default=None,
        max_length=20,
        description=(
            "Callers this binding serves (claude-code, codex, gemini-cli, vercel-ai-sdk, "
            "openai-sdk, anthropic-sdk, google-genai, or a name sent in x-switchyard-caller). "
            "Set: other callers are turned away (403), and requests from these callers whose "
            "model matches no alias are routed here. Unset: any caller, by alias. Routing, not "
            "access control: a client names itself (User-Agent, x-switchyard-caller)."
        ),
    )
    limits: Limits | None = Field(
        default=None,
        description=(
            "Rate limits and a daily token budget (docs/limits.md). Over a limit a request gets a 429 in the "
            "caller's protocol with Retry-After and never reaches a tier (no breaker counts it). Shared across the "
            "binding's pods: each pod enforces its share, limit / pods. Cost budgets are not implemented."
        ),
    )
    bound_credential: TierRef | str | None = Field(
        default=None,
        description=(
            "Deprecated: the primary of older manifests (a ModelSource name, or {sourceRef, model}). "
            "Read as `primary` only while `primary` was never set."
        ),
        json_schema_extra={"deprecated": True},
    )

    @model_validator(mode="after")
    def _no_duplicate_tiers(self) -> AssistantBindingSpec:
        seen: set[tuple[str, str | None]] = set()
        for tier in ([self.primary] if self.primary else []) + list(self.fallbacks):
            if tier.key() in seen:
                model = f" model {tier.model}" if tier.model else ""
                raise ValueError(f"duplicate tier: source {tier.source_ref.name}{model} appears twice")
            seen.add(tier.key())
        return self

    @property
    def primary_set(self) -> bool:
        """True when the manifest states `primary` (a tier or an explicit null)."""
        return "primary" in self.model_fields_set


# --------------------------------------------------------------- whole objects


class _Resource(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    api_version: Literal["switchyard.dev/v1alpha1"] = Field(alias="apiVersion")
    metadata: ObjectMeta
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace


class ModelSource(_Resource):
    kind: Literal["ModelSource"]
    spec: ModelSourceSpec


class CapabilityProfile(_Resource):
    kind: Literal["CapabilityProfile"]
    spec: CapabilityProfileSpec


class AssistantBinding(_Resource):
    kind: Literal["AssistantBinding"]
    spec: AssistantBindingSpec


class Secret(BaseModel):
    """A core/v1 Secret, as far as Switchyard reads one."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    api_version: Literal["v1"] = Field(alias="apiVersion")
    kind: Literal["Secret"]
    metadata: ObjectMeta
    data: dict[str, str] = Field(default_factory=dict)  # base64
    string_data: dict[str, str] = Field(default_factory=dict, alias="stringData")

    def value(self, key: str) -> str | None:
        import base64

        if key in self.string_data:
            return self.string_data[key]
        if key in self.data:
            return base64.b64decode(self.data[key]).decode()
        return None


KINDS: dict[str, type[_Resource]] = {
    "ModelSource": ModelSource,
    "CapabilityProfile": CapabilityProfile,
    "AssistantBinding": AssistantBinding,
}
