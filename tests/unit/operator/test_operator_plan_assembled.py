"""The plan assembles each pod's config from bindings compiled once and finds the bindings
selecting a pod through an index (``plan.py``). On a varied namespace, every pod's config
is what the per-pod compile gives (``compile_config(only=...)``, byte for byte), what its
sidecar assembles from the config Secret and its labels, and a change to one source
re-plans exactly the pods that run a tier of it."""

from __future__ import annotations

import base64
import copy
from dataclasses import replace
from typing import Any

import pytest

from switchyard.compiler import compile_config
from switchyard.operator.plan import AdminTokenRef, NamespaceInputs, credential_lookup, plan_configs
from switchyard.operator.selection import PodInfo, selects
from switchyard.operator.world import snapshot
from switchyard.sidecar.contract.delivery import ConfigBundle, assemble

import varied_namespace

NS = varied_namespace.NS


def inputs(seed: int, *, generation: int | None = None, pods: int = 60) -> tuple[NamespaceInputs, varied_namespace.Varied]:
    v = varied_namespace.build(seed, pods=pods)
    snaps: dict[str, list[Any]] = {"ModelSource": [], "CapabilityProfile": [], "AssistantBinding": []}
    secrets: dict[str, dict[str, str]] = {}
    for doc in v.docs:
        if doc["kind"] == "Secret":
            secrets[doc["metadata"]["name"]] = {k: base64.b64encode(x.encode()).decode() for k, x in doc["stringData"].items()}
            continue
        body = copy.deepcopy(doc)
        if generation is not None:
            body["metadata"]["generation"] = generation
        snaps[doc["kind"]].append(snapshot(doc["kind"], body))
    pod_infos = [PodInfo(NS, f"pod-{i}", f"uid-{i}", labels, "Running", "10.0.0.1", "http://10.0.0.1:4001", "inc")
                 for i, labels in enumerate(v.pod_labels)]
    inp = NamespaceInputs(
        namespace=NS, sources=snaps["ModelSource"], profiles=snaps["CapabilityProfile"], bindings=snaps["AssistantBinding"],
        pods=pod_infos, secrets=secrets, catalogs={name: ids for (_, name), ids in v.catalogs.items()},
    )
    return inp, v


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_pods_config_is_the_per_pod_compile_and_what_its_sidecar_assembles(seed: int) -> None:
    inp, v = inputs(seed)  # no generation: the per-pod compile has none either
    plan = plan_configs(inp)
    lookup = credential_lookup(NS, inp.secrets, frozenset({AdminTokenRef().secret}))
    assert plan.bundle is not None
    from_file = ConfigBundle.from_file(plan.bundle.to_file())
    conflicts: dict[str, set[str]] = {}
    for pod in inp.pods:
        names = frozenset(b.name for b in v.resources.bindings if selects(b.spec.selector, pod.labels))
        assert plan.pod_bindings[pod.key] == names
        want = compile_config(v.resources, credentials=lookup, catalogs=v.catalogs, only=[(NS, n) for n in names])
        got = plan.configs[pod.key]
        assert got.version == want.config.version and got.to_wire() == want.config.to_wire(), pod.name
        assert assemble(from_file, pod.labels) == got
        for (_, name), rep in want.reports.items():
            conflicts.setdefault(name, set()).update(rep.alias_conflicts)
    assert plan.alias_conflicts == {name: tuple(sorted(c)) for name, c in conflicts.items()}
    assert any(plan.alias_conflicts.values())
    whole = compile_config(v.resources, credentials=lookup, catalogs=v.catalogs)
    assert {name: r.tiers for name, r in plan.reports.items()} == {n: r.tiers for (_, n), r in whole.reports.items()}
    assert {name: r.alias_conflicts for name, r in plan.reports.items()} == {
        n: r.alias_conflicts for (_, n), r in whole.reports.items()}


def test_with_generations_every_pods_config_is_what_its_sidecar_assembles() -> None:
    inp, _ = inputs(4, generation=3)
    plan = plan_configs(inp)
    assert plan.bundle is not None
    from_file = ConfigBundle.from_file(plan.bundle.to_file())
    for pod in inp.pods:
        assert assemble(from_file, pod.labels) == plan.configs[pod.key]
        assert all(b.generation == 3 for b in plan.configs[pod.key].bindings)


@pytest.mark.parametrize("source", ["src-03", "src-10", "src-23"])
def test_one_source_changed_re_plans_exactly_the_pods_running_a_tier_of_it(source: str) -> None:
    inp, _ = inputs(5, pods=120)
    before = plan_configs(inp)
    running = {k: c.version for k, c in before.configs.items()}
    sources = [replace(s, spec={**s.spec, "baseURL": "https://elsewhere.example/v1"}) if s.name == source else s
               for s in inp.sources]
    after = plan_configs(replace(inp, sources=sources, running=running))
    expected = {p.name for p in inp.pods
                if any(t.source == source for b in before.configs[p.key].bindings for t in b.tiers)}
    assert 0 < len(expected) < len(inp.pods)
    assert {p.pod.name for p in after.pushes} == expected
