"""Usage and cost, end to end: the official SDKs call the sidecar, the simulator reports
token counts (cache reads and, on Anthropic, cache writes), and the sidecar counts them
per binding, tier, model and caller, prices them with the declared prices (exact, in
integer picos), writes them on the request line and sums them in its status report
(docs/usage-and-cost.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import anthropic

from harness import CLIENT_KEY, Gateway, GatewayFactory, binding
from switchyard.simulator import Reply, Simulator, Usage


def priced(sim: Simulator) -> str:
    return f"""apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: priced-openai}}
spec:
  provider: openai-compatible
  baseURL: {sim.base_url("primary")}
  defaultModel: gpt-priced
  capabilityProfileRef: {{name: builtin-openai}}
  credentialRef: {{name: keys, key: primary}}
  pricing:
  - {{model: gpt-priced, inputPerMillion: 2.5, outputPerMillion: 10, cachedInputPerMillion: 1.25}}
---
apiVersion: switchyard.dev/v1alpha1
kind: CapabilityProfile
metadata: {{name: claude-priced}}
spec:
  protocol: anthropic-messages
  pricing: {{currency: EUR, inputPerMillion: 3, outputPerMillion: 15, cachedInputPerMillion: 0.3, cacheWritePerMillion: 3.75}}
---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: priced-claude}}
spec:
  provider: anthropic
  baseURL: {sim.base_url("claude")}
  defaultModel: claude-priced
  capabilityProfileRef: {{name: claude-priced}}
  credentialRef: {{name: keys, key: claude}}
---
"""


def chains() -> str:
    return (binding("shop", "priced-openai", "priced-claude") + "---\n" + binding("coder", "priced-claude")
            + "---\n" + binding("plain", "backup"))


def ant(gw: Gateway) -> anthropic.AsyncAnthropic:
    c = anthropic.AsyncAnthropic(base_url=gw.api, api_key=CLIENT_KEY, max_retries=0)
    gw.clients.append(c)
    return c


def sample(gw: Gateway, name: str, **labels: str) -> float | None:
    return gw.runtime.metrics.registry.get_sample_value(name, labels)


def tokens(gw: Gateway, binding: str, tier: str, source: str, model: str, caller: str, kind: str) -> float | None:
    return sample(gw, "switchyard_usage_tokens_total", binding=binding, tier=tier, source=source, model=model,
                  caller=caller, kind=kind)


def request_lines(logs: Any) -> list[dict[str, Any]]:
    return [r.switchyard for r in logs.records if r.name == "switchyard.request"]


HI = [{"role": "user", "content": "hi"}]


async def test_tokens_and_cost_per_binding_tier_model_and_caller(gateway: GatewayFactory, sim: Simulator, logs: Any) -> None:
    gw = await gateway(priced(sim) + chains())
    # OpenAI SDK -> shop, tier 0: 1000 input (400 read from cache), 200 output
    sim.script("primary", Reply(text="ok", usage=Usage(input_tokens=1000, output_tokens=200, cached_tokens=400)), times=2)
    for _ in range(2):
        r = await gw.openai().chat.completions.create(model="shop", messages=HI)
        assert r.usage is not None and r.usage.prompt_tokens == 1000
    # Anthropic SDK -> coder: 100 fresh input, 2000 read from cache, 300 written to it, 50 output
    sim.script("claude", Reply(text="hi", usage=Usage(input_tokens=100, output_tokens=50, cached_tokens=2000, cache_write_tokens=300)))
    m = await ant(gw).messages.create(model="coder", max_tokens=64, messages=HI)
    assert (m.usage.input_tokens, m.usage.cache_read_input_tokens, m.usage.cache_creation_input_tokens) == (100, 2000, 300)
    # a fallback: shop's tier 1 (priced by its profile, in EUR) serves
    sim.fault("primary", "500")
    sim.script("claude", Reply(text="fb", usage=Usage(input_tokens=10, output_tokens=10)))
    r = await gw.openai().chat.completions.create(model="shop", messages=HI)
    # an unpriced tier: tokens, no cost
    await gw.openai().chat.completions.create(model="plain", messages=HI)

    assert tokens(gw, "shop", "0", "priced-openai", "gpt-priced", "openai-sdk", "input") == 2000
    assert tokens(gw, "shop", "0", "priced-openai", "gpt-priced", "openai-sdk", "cached_input") == 800
    assert tokens(gw, "shop", "0", "priced-openai", "gpt-priced", "openai-sdk", "output") == 400
    assert tokens(gw, "shop", "0", "priced-openai", "gpt-priced", "openai-sdk", "cache_write") is None  # none reported
    assert tokens(gw, "coder", "0", "priced-claude", "claude-priced", "anthropic-sdk", "input") == 2400  # all input
    assert tokens(gw, "coder", "0", "priced-claude", "claude-priced", "anthropic-sdk", "cached_input") == 2000
    assert tokens(gw, "coder", "0", "priced-claude", "claude-priced", "anthropic-sdk", "cache_write") == 300
    assert tokens(gw, "shop", "1", "priced-claude", "claude-priced", "openai-sdk", "input") == 10
    assert tokens(gw, "plain", "0", "backup", "backup-model", "openai-sdk", "output") is not None
    # the old family keeps its labels and gains the cache_write kind
    assert sample(gw, "switchyard_tokens_total", binding="coder", tier="0", source="priced-claude", kind="cache_write") == 300

    # 600 x 2.5 + 400 x 1.25 + 200 x 10 per million = 0.004 USD a request, twice
    assert sample(gw, "switchyard_cost_total", binding="shop", tier="0", source="priced-openai", model="gpt-priced",
                  caller="openai-sdk", currency="USD") == 0.008
    # 100 x 3 + 2000 x 0.3 + 300 x 3.75 + 50 x 15 per million = 0.002775 EUR
    assert sample(gw, "switchyard_cost_total", binding="coder", tier="0", source="priced-claude", model="claude-priced",
                  caller="anthropic-sdk", currency="EUR") == 0.002775
    assert sample(gw, "switchyard_cost_total", binding="shop", tier="1", source="priced-claude", model="claude-priced",
                  caller="openai-sdk", currency="EUR") == 0.00018
    text = gw.runtime.metrics.exposition().decode()
    assert 'binding="plain"' in text and not any('binding="plain"' in line for line in text.splitlines()
                                                if line.startswith("switchyard_cost_total"))
    # never the name a client sent
    assert 'model="shop"' not in text and 'model="coder"' not in text

    lines = request_lines(logs)
    first, coder, fallback, plain = lines[0], lines[2], lines[3], lines[4]
    assert (first["input_tokens"], first["output_tokens"], first["cached_input_tokens"]) == (1000, 200, 400)
    assert "cache_write_tokens" not in first and (first["cost"], first["currency"]) == (0.004, "USD")
    assert (coder["input_tokens"], coder["cached_input_tokens"], coder["cache_write_tokens"]) == (2400, 2000, 300)
    assert (coder["cost"], coder["currency"]) == (0.002775, "EUR")
    assert fallback["tier"] == 1 and fallback["cost"] == 0.00018
    assert plain["input_tokens"] > 0 and "cost" not in plain and "currency" not in plain


async def test_a_request_no_tier_served_has_no_usage_on_its_line(gateway: GatewayFactory, sim: Simulator, logs: Any) -> None:
    gw = await gateway(priced(sim) + chains())
    sim.fault("primary", "500")
    sim.fault("claude", "500")
    async with aiohttp.ClientSession() as c:
        async with c.post(gw.api + "/v1/chat/completions", json={"model": "shop", "messages": HI}) as r:
            assert r.status >= 500
    [line] = request_lines(logs)
    assert not {"input_tokens", "output_tokens", "cost", "currency"} & set(line)


async def test_the_status_report_sums_usage_per_binding(gateway: GatewayFactory, sim: Simulator) -> None:
    gw = await gateway(priced(sim) + chains())
    sim.script("primary", Reply(text="ok", usage=Usage(input_tokens=1000, output_tokens=200, cached_tokens=400)), times=3)
    for _ in range(3):
        await gw.openai().chat.completions.create(model="shop", messages=HI)
    sim.fault("primary", "500")
    sim.script("claude", Reply(text="fb", usage=Usage(input_tokens=10, output_tokens=10, cache_write_tokens=5)))
    await gw.openai().chat.completions.create(model="shop", messages=HI)
    async with aiohttp.ClientSession() as c:
        async with c.get(gw.admin + "/admin/status") as r:
            report = await r.json()
    shop = next(b for b in report["bindings"] if b["name"] == "shop")
    assert shop["usage"]["tokens"] == {"input": 3015, "output": 610, "cached_input": 1200, "cache_write": 5, "reasoning": 0}
    # 3 x 0.004 USD; 10 x 3 + 5 x 3.75 + 10 x 15 per million EUR, as exact decimal strings
    assert {k: Decimal(v) for k, v in shop["usage"]["cost"].items()} == {"USD": Decimal("0.012"), "EUR": Decimal("0.00019875")}
    plain = next(b for b in report["bindings"] if b["name"] == "plain")
    assert "usage" not in plain  # no traffic: nothing to report
