"""Per-pod configs: what ``compile_config(only=...)`` gives for the set of bindings that
select a pod, byte for byte, recorded before the operator assembled them from bindings
compiled once (``per_pod_configs.json``).

Each set of bindings is recorded with its config's version, a hash of its push body
(``to_wire``: credentials in clear, every field) and of its redacted JSON, and each
binding's aliases and alias conflicts in that set's reports. The namespaces: the varied
one (``tests/varied_namespace.py``, two seeds), the operator bench's (300 bindings over
100 sources, its 500 pods) and the manifests of ``examples/`` (standalone, with some keys
in the environment and some not).

Re-record only for a deliberate change of the compiled output:
``PYTHONPATH=.:tests python tests/unit/compiler/test_per_pod_configs.py --record``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from switchyard.api.manifests import ResourceSet, load_manifests
from switchyard.compiler import compile_config
from switchyard.compiler.compile import CompileResult, assemble_compiled, compile_bindings, settled_reports
from switchyard.sidecar.contract.delivery import assemble_bindings
from switchyard.operator.selection import selects

import varied_namespace

REPO = Path(__file__).resolve().parents[3]
RECORD = Path(__file__).with_name("per_pod_configs.json")
ENVIRON = {"OPENAI_API_KEY": "sk-env-openai", "ANTHROPIC_API_KEY": "sk-env-anthropic"}  # the others unset


def bench_module() -> Any:
    spec = importlib.util.spec_from_file_location("operator_scale_bench", REPO / "bench" / "operator_scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scenarios() -> list[tuple[str, ResourceSet, dict[str, Any], list[frozenset[tuple[str, str]]]]]:
    return list(_scenarios())


def _scenarios() -> Iterator[tuple[str, ResourceSet, dict[str, Any], list[frozenset[tuple[str, str]]]]]:
    """(name, resources, compile_config keyword arguments, the sets of bindings to compile)."""
    for seed in (1, 2):
        v = varied_namespace.build(seed)
        rs = v.resources
        sets = [frozenset((b.namespace, b.name) for b in rs.bindings if selects(b.spec.selector, labels))
                for labels in v.pod_labels]
        rnd = random.Random(seed)
        keys = [(b.namespace, b.name) for b in rs.bindings]
        sets += [frozenset(rnd.sample(keys, rnd.randint(1, 12))) for _ in range(20)]  # more alias collisions
        yield f"varied-{seed}", rs, {"catalogs": v.catalogs}, sets
    bench = bench_module()
    rs, _uses = bench.build(300, 100)
    sets = [frozenset((b.namespace, b.name) for b in rs.bindings if selects(b.spec.selector, p.labels))
            for p in bench.pods()]
    yield "bench-300", rs, {}, sets
    for folder in ("demo", "hosted", "local"):
        rs, errors = load_manifests(REPO / "examples" / folder)
        assert not errors, errors
        keys = sorted((b.namespace, b.name) for b in rs.bindings)
        sets = [frozenset(c) for n in range(1, len(keys) + 1) for c in itertools.combinations(keys, n)][:40]
        yield f"examples-{folder}", rs, {"standalone": True, "environ": ENVIRON}, sets


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:24]


def fingerprint(result: CompileResult) -> dict[str, Any]:
    """What must not change: the version, the exact bytes, each binding's aliases and conflicts."""
    cfg = result.config
    return {
        "version": cfg.version,
        "wire": digest(cfg.to_wire()),
        "redacted": digest(json.dumps(cfg.redacted(), sort_keys=True).encode()),
        "aliases": digest(json.dumps([[ns, n, r.aliases, r.alias_conflicts] for (ns, n), r in sorted(result.reports.items())]).encode()),
        "conflicts": sum(len(r.alias_conflicts) for r in result.reports.values()),
    }


def set_key(names: frozenset[tuple[str, str]]) -> str:
    """How many bindings, and which (hashed: the record stays small)."""
    return f"{len(names)}:" + digest(",".join(f"{ns}/{n}" for ns, n in sorted(names)).encode())[:12]


def record() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rs, kwargs, sets in _scenarios():
        entry: dict[str, Any] = {"whole": fingerprint(compile_config(rs, **kwargs)), "sets": {}}
        for names in sets:
            entry["sets"][set_key(names)] = fingerprint(compile_config(rs, only=sorted(names), **kwargs))
        out[name] = entry
    return out


def recorded() -> dict[str, Any]:
    return json.loads(RECORD.read_text())


def test_the_scenarios_exercise_what_can_differ(scenarios: list[Any]) -> None:
    """The record is only worth something if the namespaces hold alias conflicts within a
    pod's set, problem tiers and empty sets."""
    rec = recorded()
    assert sum(1 for entry in rec.values() for fp in entry["sets"].values() if fp["conflicts"]) > 50
    assert any(k.startswith("0:") for k in rec["bench-300"]["sets"])  # pods no binding selects: the empty config
    assert len(rec) == len(scenarios) and all(e["sets"] for e in rec.values())
    assert all(len(rec[name]["sets"]) > 50 for name in ("varied-1", "varied-2", "bench-300"))


def test_compile_config_gives_the_recorded_per_pod_configs(scenarios: list[Any]) -> None:
    rec = recorded()
    for name, rs, kwargs, sets in scenarios:
        assert fingerprint(compile_config(rs, **kwargs)) == rec[name]["whole"], name
        for names in sets:
            got = fingerprint(compile_config(rs, only=sorted(names), **kwargs))
            assert got == rec[name]["sets"][set_key(names)], (name, set_key(names))


def test_bindings_compiled_once_and_assembled_per_pod_give_the_recorded_configs(scenarios: list[Any]) -> None:
    """What the operator does: each binding compiled once, each pod's set assembled from
    them (aliases settled within the set): the same bytes, version and reports."""
    rec = recorded()
    for name, rs, kwargs, sets in scenarios:
        compiled = compile_bindings(rs, **kwargs)
        assert fingerprint(assemble_compiled(compiled)) == rec[name]["whole"], name
        for names in sets:
            assembled = assemble_compiled(compiled, names)
            assert fingerprint(assembled) == rec[name]["sets"][set_key(names)], (name, set_key(names))
            assert settled_reports(compiled, names) == assembled.reports
            # The sidecar's side of the same rule (delivery.assemble): the same config.
            assert assemble_bindings(compiled[k][0] for k in names) == assembled.config


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        raise SystemExit(__doc__)
    RECORD.write_text(json.dumps(record(), indent=1, sort_keys=True) + "\n")
