"""Which pods carry a sidecar, which bindings select them, where their admin API is (pure)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from switchyard.api.models import LabelSelector
from switchyard.operator.selection import SelectorIndex, admin_url, carries_sidecar, incarnation, pod_info, selects

import varied_namespace


def pod(*, annotations: dict[str, str] | None = None, containers: list[dict[str, Any]] | None = None,
        phase: str = "Running", ip: str | None = "10.0.0.7", restarts: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "a"}, "annotations": annotations or {}},
        "spec": {"containers": containers if containers is not None else [{"name": "app"}]},
        "status": {"phase": phase, "podIP": ip, "containerStatuses": [
            {"name": "switchyard", "restartCount": restarts, "state": {"running": {"startedAt": f"t{restarts}"}}}]},
    }


SIDECAR = {"name": "switchyard", "ports": [{"name": "sy-admin", "containerPort": 5001}]}


def test_carries_sidecar_by_annotation_or_container() -> None:
    assert carries_sidecar(pod(annotations={"switchyard.dev/inject": "true"}))
    assert carries_sidecar(pod(annotations={"switchyard.dev/inject": "True"}))
    assert carries_sidecar(pod(containers=[{"name": "app"}, SIDECAR]))
    assert carries_sidecar({"spec": {"initContainers": [{"name": "switchyard"}]}})
    assert not carries_sidecar(pod(annotations={"switchyard.dev/inject": "false"}))
    assert not carries_sidecar(pod())


def test_admin_url_from_pod_ip_and_named_port() -> None:
    p = pod(containers=[{"name": "app"}, SIDECAR])
    assert admin_url(p, default_port=4001, allow_override=False) == "http://10.0.0.7:5001"
    assert admin_url(pod(), default_port=4001, allow_override=False) == "http://10.0.0.7:4001"
    assert admin_url(pod(annotations={"switchyard.dev/admin-port": "4555"}), default_port=4001, allow_override=False) == "http://10.0.0.7:4555"
    assert admin_url(pod(ip="fd00::7"), default_port=4001, allow_override=False) == "http://[fd00::7]:4001"


def test_no_address_until_running_with_an_ip() -> None:
    assert admin_url(pod(phase="Pending", ip=None), default_port=4001, allow_override=False) is None
    assert admin_url(pod(phase="Pending"), default_port=4001, allow_override=False) is None
    assert admin_url(pod(ip="not-an-ip"), default_port=4001, allow_override=False) is None


def test_admin_url_annotation_only_when_allowed() -> None:
    p = pod(phase="Pending", ip=None, annotations={"switchyard.dev/admin-url": "http://127.0.0.1:39999/"})
    assert admin_url(p, default_port=4001, allow_override=False) is None
    assert admin_url(p, default_port=4001, allow_override=True) == "http://127.0.0.1:39999"


def test_incarnation_changes_on_restart_and_move() -> None:
    base = incarnation(pod(), "http://10.0.0.7:4001")
    assert base == incarnation(pod(), "http://10.0.0.7:4001")
    assert base != incarnation(pod(restarts=1), "http://10.0.0.7:4001")
    assert base != incarnation(pod(), "http://10.0.0.8:4001")


def test_pod_info() -> None:
    info = pod_info(pod(annotations={"switchyard.dev/inject": "true"}), default_port=4001, allow_override=False)
    assert info.key == ("ns", "p") and info.labels == {"app": "a"}
    assert info.injected is False  # asked, but no switchyard container (webhook was down?)
    assert pod_info(pod(containers=[SIDECAR]), default_port=4001, allow_override=False).injected


def test_empty_selector_selects_nothing() -> None:
    assert not selects(LabelSelector(), {"app": "a"})
    assert selects(LabelSelector(matchLabels={"app": "a"}), {"app": "a", "x": "y"})
    assert not selects(LabelSelector(matchLabels={"app": "b"}), {"app": "a"})
    expr = LabelSelector(matchExpressions=[{"key": "tier", "operator": "In", "values": ["gold"]}])
    assert selects(expr, {"tier": "gold"}) and not selects(expr, {"tier": "bronze"})


# --------------------------------------------------------------------------- the index


KEYS, VALUES = ["app", "team", "tier", "zone"], ["a", "b", "c"]
label_maps = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=4)
requirements = st.builds(
    lambda key, op, values: {"key": key, "operator": op, "values": values if op in ("In", "NotIn") else []},
    st.sampled_from([*KEYS, "other"]), st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
    st.lists(st.sampled_from(VALUES), min_size=1, max_size=3),
)
selectors = st.builds(lambda ml, me: LabelSelector(matchLabels=ml, matchExpressions=me),
                      label_maps, st.lists(requirements, max_size=3))


def brute_force(sels: list[LabelSelector], labels: dict[str, str]) -> list[int]:
    return [i for i, sel in enumerate(sels) if selects(sel, labels)]


@settings(max_examples=300, deadline=None)
@given(st.lists(selectors, max_size=25), st.lists(label_maps, min_size=1, max_size=8))
def test_the_index_selects_what_every_selector_selects(sels: list[LabelSelector], pods: list[dict[str, str]]) -> None:
    """matchLabels, every matchExpressions operator, both, and the empty selector (which
    selects no pod, not every pod): the index and testing every selector agree."""
    index = SelectorIndex(enumerate(sels))
    for labels in pods:
        assert index.selecting(labels) == brute_force(sels, labels)


def test_the_index_agrees_on_a_varied_namespace() -> None:
    for seed in range(1, 6):
        v = varied_namespace.build(seed, pods=200)
        sels = [b.spec.selector for b in v.resources.bindings]
        assert any(not s.match_labels and not s.match_expressions for s in sels)  # empty ones too
        index = SelectorIndex(enumerate(sels))
        rnd = random.Random(seed)
        for labels in [*v.pod_labels, {}, {"app": "a"}, *({k: rnd.choice(VALUES) for k in KEYS} for _ in range(20))]:
            assert index.selecting(labels) == brute_force(sels, labels)


def test_an_empty_selector_is_in_no_pods_candidates_and_order_is_kept() -> None:
    sels = [LabelSelector(), LabelSelector(matchLabels={"app": "a"}),
            LabelSelector(matchExpressions=[{"key": "app", "operator": "Exists"}]),
            LabelSelector(matchLabels={"app": "a", "tier": "gold"})]
    index = SelectorIndex(zip("wxyz", sels, strict=True))
    assert index.selecting({}) == []
    assert index.selecting({"app": "a"}) == ["x", "y"]
    assert index.selecting({"tier": "gold", "app": "a"}) == ["x", "y", "z"]
    assert index.selecting({"app": "b"}) == ["y"]
