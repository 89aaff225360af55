#!/usr/bin/env python3
"""Operator scale: how long the compiler takes for many bindings, per-pod configs for
500 emulated sidecars, and which pods a change to one source re-pushes.

    python3 bench/operator_scale.py            # 100 / 1,000 / 5,000 bindings over 100 sources
    python3 bench/operator_scale.py --quick    # 100 / 1,000 only, one round each

What it does, with the operator's own code (no cluster, no sockets):

1. builds a namespace of 100 ModelSources (a mix of OpenAI, Anthropic and Gemini), one
   Secret holding their keys, and N AssistantBindings (primary + one or two fallbacks
   drawn from the sources), each selecting pods labelled ``app: app-<k>``;
2. times ``compile_config`` over the whole namespace (what the operator compiles for
   the bindings' status), best of a few rounds;
3. emulates 500 sidecar pods (``app-0`` .. ``app-499``; pod ``i`` is selected by every
   binding whose ``k`` is ``i``), and computes each pod's config the way the reconciler
   does: one ``compile_config(only=...)`` per distinct set of bindings selecting a pod,
   pods with the same set sharing it; a ``PushMemory`` (the operator's) records what
   each pod runs;
4. changes one source (its default model) and recomputes every pod's config: the pods
   whose version changed are exactly the pods with a binding that uses that source, and
   only those need a push (``PushMemory.needs_push``). The script checks this and exits
   non-zero if it does not hold.

Target (issue 6): compile of 1,000 bindings < 200 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
try:
    from switchyard.api.manifests import ResourceSet, parse_document
except ImportError:  # run with the repo's venv
    import os

    venv = REPO / ".venv" / "bin" / "python"
    if venv.exists() and Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        os.execv(str(venv), [str(venv), str(Path(__file__).resolve()), *sys.argv[1:]])
    raise

from switchyard.compiler import compile_config, secrets_lookup
from switchyard.operator.push import PushMemory
from switchyard.operator.selection import PodInfo, selects

NS = "team"
PROVIDERS = ("openai", "anthropic", "gemini")
PODS = 500


def _doc(kind: str, name: str, spec: dict[str, Any], api: str = "switchyard.dev/v1alpha1") -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": NS}, "spec": spec}


def _parse(doc: dict[str, Any]) -> Any:
    res, errors = parse_document(doc)
    if res is None:
        raise SystemExit(f"bench manifest refused: {errors}")
    return res


def source_doc(i: int, model_suffix: str = "") -> dict[str, Any]:
    provider = PROVIDERS[i % 3]
    return _doc("ModelSource", f"src-{i:03d}", {
        "provider": provider,
        "baseURL": {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com",
                    "gemini": "https://generativelanguage.googleapis.com"}[provider],
        "defaultModel": {"openai": "gpt-5", "anthropic": "claude-sonnet-4-6", "gemini": "gemini-2.5-pro"}[provider]
        + model_suffix,
        "credentialRef": {"name": "keys", "key": f"k{i:03d}"},
    })


def build(bindings: int, sources: int, seed: int = 7) -> tuple[ResourceSet, dict[str, set[str]]]:
    """The namespace, and for each binding the sources its chain uses."""
    rnd = random.Random(seed)
    secret = _parse({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys", "namespace": NS},
                     "stringData": {f"k{i:03d}": f"sk-bench-{i:03d}" for i in range(sources)}})
    srcs = [_parse(source_doc(i)) for i in range(sources)]
    bds, uses = [], {}
    for j in range(bindings):
        chain = rnd.sample(range(sources), 1 + rnd.randint(1, 2))
        name = f"bind-{j:05d}"
        spec = {
            "aliases": [name],
            "selector": {"matchLabels": {"app": f"app-{j % PODS}"}},
            "primary": {"sourceRef": {"name": f"src-{chain[0]:03d}"}},
            "fallbacks": [{"sourceRef": {"name": f"src-{c:03d}"}} for c in chain[1:]],
        }
        bds.append(_parse(_doc("AssistantBinding", name, spec)))
        uses[name] = {f"src-{c:03d}" for c in chain}
    return ResourceSet(sources=srcs, bindings=bds, secrets=[secret]), uses


def pods() -> list[PodInfo]:
    return [PodInfo(NS, f"pod-{i}", f"uid-{i}", {"app": f"app-{i}"}, "Running", "10.0.0.1",
                    f"http://10.0.0.1:{4001}", "inc-1") for i in range(PODS)]


def pod_configs(rs: ResourceSet, pod_list: list[PodInfo]) -> tuple[dict[tuple[str, str], str], int, float, float]:
    """Each pod's config version, as the reconciler computes them:
    (versions, compiles, CPU seconds selecting pods, CPU seconds compiling)."""
    lookup = secrets_lookup(rs.secrets)
    t0 = time.process_time()
    sets = {pod.key: frozenset(b.name for b in rs.bindings if selects(b.spec.selector, pod.labels)) for pod in pod_list}
    t1 = time.process_time()
    by_set: dict[frozenset[str], str] = {}
    out: dict[tuple[str, str], str] = {}
    for pod in pod_list:
        names = sets[pod.key]
        if names not in by_set:
            only = [(NS, n) for n in sorted(names)]
            by_set[names] = compile_config(rs, credentials=lookup, only=only).config.version
        out[pod.key] = by_set[names]
    return out, len(by_set), t1 - t0, time.process_time() - t1


def time_compile(rs: ResourceSet, rounds: int) -> tuple[float, float, float]:
    """(best CPU seconds, median CPU seconds, best wall seconds) of compiling everything."""
    lookup = secrets_lookup(rs.secrets)
    cpu, wall = [], []
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        result = compile_config(rs, credentials=lookup)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    assert len(result.config.bindings) == len(rs.bindings)
    return min(cpu), statistics.median(cpu), min(wall)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100 and 1,000 bindings, one round")
    ap.add_argument("--sizes", default=None, help="comma-separated binding counts (default 100,1000,5000)")
    ap.add_argument("--sources", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one 1,000-binding compile")
    args = ap.parse_args()
    sizes = [int(s) for s in (args.sizes or ("100,1000" if args.quick else "100,1000,5000")).split(",")]
    rounds = args.rounds or (1 if args.quick else 5)
    ok = True

    print(f"operator scale: {args.sources} sources, {PODS} emulated sidecar pods. Times are CPU time of this process "
          f"(robust on a shared box), best of {rounds} rounds (median, best wall time); per-pod figures are one pass.")
    print(f"{'bindings':>8}  {'compile all, ms':>30}  {'per binding':>11}  {'per-pod configs for 500 pods':>44}  "
          f"{'one source changed: pods to re-push':>36}")
    for n in sizes:
        rs, uses = build(n, args.sources)
        best, med, wall = time_compile(rs, rounds)
        pod_list = pods()
        memory = PushMemory()
        before, compiles, sel, secs = pod_configs(rs, pod_list)
        for pod in pod_list:
            memory.pushed(pod, before[pod.key])

        # Change one source: its default model.
        changed = "src-042"
        idx = int(changed[4:])
        rs2 = ResourceSet(
            sources=[_parse(source_doc(i, "-next")) if i == idx else s for i, s in enumerate(rs.sources)],
            bindings=rs.bindings, secrets=rs.secrets,
        )
        after, compiles2, _sel2, secs2 = pod_configs(rs2, pod_list)
        repushed = {p.key for p in pod_list if memory.needs_push(p, after[p.key], now=0.0)}
        expected = {p.key for p in pod_list
                    if any(changed in uses[b.name] for b in rs.bindings if selects(b.spec.selector, p.labels))}
        holds = repushed == expected
        ok &= holds
        flag = "" if n != 1000 else ("  (target < 200 ms: met)" if best < 0.2 else "  (target < 200 ms: NOT met)")
        print(f"{n:>8}  {best * 1000:8.1f} ({med * 1000:7.1f}, wall {wall * 1000:7.1f})  {best / n * 1e6:8.1f} us  "
              f"select {sel * 1000:6.1f} ms + {compiles:>3} compiles {secs * 1000:7.1f} ms ({secs2 * 1000:7.1f} after)  "
              f"{len(repushed):>4} of {PODS} (expected {len(expected)}: {'exact' if holds else 'MISMATCH'}){flag}")

    if args.profile:
        import cProfile
        import pstats

        rs, _ = build(1000, args.sources)
        lookup = secrets_lookup(rs.secrets)
        prof = cProfile.Profile()
        prof.enable()
        compile_config(rs, credentials=lookup)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    if not ok:
        print("a source change re-pushed other pods than those whose bindings use it", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
