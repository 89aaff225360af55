"""Prices compiled into tiers: the ModelSource's per-model entry first, then the tier's
CapabilityProfile, in integer millionths per million tokens (docs/usage-and-cost.md)."""

from __future__ import annotations

import orjson

from switchyard.sidecar.contract.config import CompiledConfig, CompiledPrice

from test_compiler import SOURCES, binding, compile_text

PRICED = """
---
apiVersion: switchyard.dev/v1alpha1
kind: CapabilityProfile
metadata: {name: sonnet}
spec:
  protocol: anthropic-messages
  pricing: {currency: EUR, inputPerMillion: 2.8, outputPerMillion: 14}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: priced}
spec:
  provider: openai
  defaultModel: gpt-5
  credentialRef: {name: keys, key: openai}
  pricing:
  - {model: gpt-5, inputPerMillion: 1.25, outputPerMillion: 10, cachedInputPerMillion: 0.125}
  - {model: "gpt-5-*", currency: USD, inputPerMillion: 0.25, outputPerMillion: 2, cacheWritePerMillion: 0.3125}
  - {model: "*", inputPerMillion: 0.0000015, outputPerMillion: 0.000001}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {name: an-priced}
spec:
  provider: anthropic
  defaultModel: claude-sonnet-4-5
  capabilityProfileRef: {name: sonnet}
  credentialRef: {name: keys, key: openai}
  pricing:
  - {model: claude-opus-4, inputPerMillion: 15, outputPerMillion: 75, cachedInputPerMillion: 1.5, cacheWritePerMillion: 18.75}
"""


def _tiers(chain: str):
    res = compile_text(SOURCES + PRICED + binding(chain))
    return res.config.bindings[0].tiers


def test_the_sources_first_matching_entry_prices_the_tier() -> None:
    tiers = _tiers(
        "{primary: {sourceRef: {name: priced}}, fallbacks: [{sourceRef: {name: priced}, model: gpt-5-mini},"
        " {sourceRef: {name: priced}, model: o3}]}"
    )
    assert tiers[0].pricing == CompiledPrice(currency="USD", input=1_250_000, output=10_000_000, cached_input=125_000,
                                             cache_write=1_250_000)
    # unset cache prices are the input price (no discount assumed)
    assert tiers[1].pricing == CompiledPrice(currency="USD", input=250_000, output=2_000_000, cached_input=250_000,
                                             cache_write=312_500)
    # read to six decimals, rounded half to even
    assert tiers[2].pricing == CompiledPrice(currency="USD", input=2, output=1, cached_input=2, cache_write=2)


def test_the_profile_prices_a_model_the_source_does_not() -> None:
    tiers = _tiers("{primary: {sourceRef: {name: an-priced}}, fallbacks: [{sourceRef: {name: an-priced}, model: claude-opus-4}]}")
    assert tiers[0].pricing == CompiledPrice(currency="EUR", input=2_800_000, output=14_000_000, cached_input=2_800_000,
                                             cache_write=2_800_000)
    assert tiers[1].pricing == CompiledPrice(currency="USD", input=15_000_000, output=75_000_000, cached_input=1_500_000,
                                             cache_write=18_750_000)


def test_a_tier_without_a_price_serialises_as_before() -> None:
    tiers = _tiers("{primary: {sourceRef: {name: oa}}, fallbacks: [{sourceRef: {name: priced}}]}")
    assert tiers[0].pricing is None
    wire = orjson.loads(CompiledConfig(bindings=compile_text(SOURCES + binding("{primary: {sourceRef: {name: oa}}}"))
                                       .config.bindings).to_wire())
    assert "pricing" not in wire["bindings"][0]["tiers"][0]
    assert "pricing" in orjson.loads(CompiledConfig(bindings=compile_text(SOURCES + PRICED + binding(
        "{primary: {sourceRef: {name: priced}}}")).config.bindings).to_wire())["bindings"][0]["tiers"][0]


def test_a_price_change_changes_the_config_version() -> None:
    chain = binding("{primary: {sourceRef: {name: priced}}}")
    one = compile_text(SOURCES + PRICED + chain).config.version
    two = compile_text(SOURCES + PRICED.replace("outputPerMillion: 10,", "outputPerMillion: 12,") + chain).config.version
    assert one != two


def test_the_compiled_price_round_trips_the_wire() -> None:
    config = compile_text(SOURCES + PRICED + binding("{primary: {sourceRef: {name: priced}}}")).config
    again = CompiledConfig.from_wire(config.to_wire())
    assert again.bindings[0].tiers[0].pricing == config.bindings[0].tiers[0].pricing
    assert again.with_version().version == config.version


def test_a_price_change_does_not_put_a_disabled_tier_back_in_service() -> None:
    """The fingerprint (a disabled tier is enabled again when it changes) leaves the price out."""
    chain = binding("{primary: {sourceRef: {name: priced}}}")
    one = compile_text(SOURCES + PRICED + chain).config.bindings[0].tiers[0]
    two = compile_text(SOURCES + PRICED.replace("outputPerMillion: 10,", "outputPerMillion: 12,") + chain).config.bindings[0].tiers[0]
    assert one.pricing != two.pricing and one.fingerprint() == two.fingerprint()
