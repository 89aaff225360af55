"""Config delivery by files (``sidecar/contract/delivery.py``): the namespace bundle the
operator writes into its config Secret, and what a sidecar assembles from it and its labels.

The operator's plan and the sidecar call the same ``assemble``: a pod's sidecar, reading
the Secret and its own labels, runs exactly the version the operator planned for it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from switchyard.api.models import LabelSelector
from switchyard.operator.plan import plan_configs
from switchyard.operator.selection import selects
from switchyard.sidecar.contract.delivery import ConfigBundle, assemble, parse_labels, selector_selects

from test_operator_plan import KEY_A, KEY_B, b64, binding, world


def test_every_pods_planned_config_is_what_its_sidecar_assembles_from_the_secret() -> None:
    plan = plan_configs(world())
    assert plan.bundle is not None
    from_file = ConfigBundle.from_file(plan.bundle.to_file())  # what the sidecar reads from its volume
    assert from_file.version == plan.bundle.version
    for p in world().pods:
        assert assemble(from_file, p.labels) == plan.configs[p.key]
        assert assemble(from_file, p.labels).version == plan.configs[p.key].version


def test_the_bundle_holds_every_binding_of_the_namespace_with_its_selector_and_keys() -> None:
    plan = plan_configs(world())
    assert plan.bundle is not None
    raw = plan.bundle.to_file()
    assert KEY_A.encode() in raw and KEY_B.encode() in raw  # the Secret is where keys live
    assert [e.binding.name for e in plan.bundle.bindings] == ["alpha", "beta"]
    assert plan.bundle.bindings[0].selector.match_labels == {"app": "a"}
    assert KEY_A not in repr(plan.bundle) and KEY_A not in str(plan.bundle.model_dump())  # never in a log line


def test_aliases_two_bindings_of_one_pod_share_are_settled_as_the_compiler_does() -> None:
    shared = world(
        bindings=[binding("alpha", "a", "a", aliases=["gpt", "alpha"]), binding("beta", "a", "b", aliases=["gpt", "beta"]),
                  binding("gamma", "b", "b", aliases=["gpt"])],
    )
    plan = plan_configs(shared)
    assert plan.bundle is not None
    cfg = plan.configs[("ns", "p-a1")]
    assert [(b.name, b.aliases) for b in cfg.bindings] == [("alpha", ["gpt", "alpha"]), ("beta", ["beta"])]
    # a pod of another app keeps the alias for its own binding
    assert [(b.name, b.aliases) for b in plan.configs[("ns", "p-b")].bindings] == [("gamma", ["gpt"])]
    assert plan.alias_conflicts["beta"] == ("gpt (taken by ns/alpha)",)


def test_a_binding_generation_travels_in_the_config_so_the_sidecar_can_reset_disabled_tiers() -> None:
    before = plan_configs(world())
    later = world(bindings=[binding("alpha", "a", "a"), replace(binding("beta", "b", "b"), generation=7)])
    after = plan_configs(later)
    assert [b.generation for b in after.configs[("ns", "p-b")].bindings] == [7]
    assert after.configs[("ns", "p-b")].version != before.configs[("ns", "p-b")].version
    assert after.configs[("ns", "p-a1")].version == before.configs[("ns", "p-a1")].version


def test_the_secret_delivery_needs_no_admin_token() -> None:
    plan = plan_configs(world(secrets={"key-a": {"api-key": b64(KEY_A)}, "key-b": {"api-key": b64(KEY_B)}}))
    assert plan.blocked == {} and {p.pod.name for p in plan.pushes} == {"p-a1", "p-a2", "p-b"}
    pushmode = plan_configs(world(delivery="push", secrets={"key-a": {"api-key": b64(KEY_A)}}))
    assert pushmode.blocked[("ns", "p-a1")].reason == "AdminTokenMissing"


SELECTORS = [
    ({"matchLabels": {"app": "a"}}, {"app": "a", "x": "1"}, True),
    ({"matchLabels": {"app": "a"}}, {"app": "b"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["x", "y"]}]}, {"tier": "y"}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["x"]}]}, {}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]}, {}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]}, {"tier": "x"}, False),
    ({"matchExpressions": [{"key": "t", "operator": "Exists"}]}, {"t": ""}, True),
    ({"matchExpressions": [{"key": "t", "operator": "DoesNotExist"}]}, {"t": ""}, False),
    ({"matchLabels": {"app": "a"}, "matchExpressions": [{"key": "t", "operator": "Exists"}]}, {"app": "a"}, False),
    ({}, {"app": "a"}, False),  # an empty selector selects no pods
]


@pytest.mark.parametrize(("selector", "labels", "expected"), SELECTORS)
def test_the_operator_and_the_sidecar_match_selectors_with_one_function(selector, labels, expected) -> None:
    sel = LabelSelector.model_validate(selector)
    assert selects(sel, labels) is expected
    exprs = [(e["key"], e["operator"], e.get("values", [])) for e in selector.get("matchExpressions", [])]
    assert selector_selects(selector.get("matchLabels", {}), exprs, labels) is expected


def test_the_downward_api_labels_file_is_read() -> None:
    text = 'app="chat"\npod-template-hash="5d8f"\nswitchyard.dev/inject="true"\nempty=""\n'
    assert parse_labels(text) == {"app": "chat", "pod-template-hash": "5d8f", "switchyard.dev/inject": "true", "empty": ""}
    assert parse_labels("") == {}


def test_a_tampered_bundle_is_refused_whole() -> None:
    plan = plan_configs(world())
    assert plan.bundle is not None
    raw = plan.bundle.to_file().replace(b'"schema_version":1', b'"schema_version":1,"extra":1')
    with pytest.raises(ValueError):
        ConfigBundle.from_file(raw)
