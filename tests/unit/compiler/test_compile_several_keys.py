"""Several keys per ModelSource (``credentialRefs``): resolved per index, a key that does
not resolve makes only that key unusable, and a single key compiles exactly as before."""

from __future__ import annotations

import base64

from switchyard.compiler.compile import CredentialRefused

from test_compiler import binding, compile_text  # type: ignore[import-not-found]


def b64(v: str) -> str:
    return base64.b64encode(v.encode()).decode()


def source(refs: str, name: str = "oa") -> str:
    return f"""---
apiVersion: switchyard.dev/v1alpha1
kind: ModelSource
metadata: {{name: {name}}}
spec:
  provider: openai
  defaultModel: gpt-5
  {refs}
"""


SECRETS = f"""---
apiVersion: v1
kind: Secret
metadata: {{name: keys}}
data:
  a: {b64("sk-key-zero-aaaa")}
  b: {b64("sk-key-one-bbbbb")}
"""

CHAIN = binding("{primary: {sourceRef: {name: oa}}}")


def test_every_key_resolved_in_order_with_its_index() -> None:
    res = compile_text(source("credentialRefs: [{name: keys, key: a}, {name: keys, key: b}]") + SECRETS + CHAIN)
    tier = res.config.bindings[0].tiers[0]
    assert tier.problem is None
    assert [(k.index, k.credential.get_secret_value(), k.problem) for k in tier.keys] == [
        (0, "sk-key-zero-aaaa", None), (1, "sk-key-one-bbbbb", None),
    ]
    assert tier.credential.get_secret_value() == "sk-key-zero-aaaa"  # the first usable key, for old readers
    rep = res.reports[("default", "helper")].tiers[0]
    assert rep.resolvable and [(k.index, k.resolvable) for k in rep.keys] == [(0, True), (1, True)]
    assert "sk-key" not in str(res.config.redacted()) and "sk-key" not in repr(tier)


def test_a_missing_key_disables_only_that_index() -> None:
    res = compile_text(
        source("credentialRefs: [{name: keys, key: nope}, {name: gone, key: a}, {name: keys, key: b}]") + SECRETS + CHAIN
    )
    tier = res.config.bindings[0].tiers[0]
    assert tier.problem is None  # key 2 resolves: the tier serves
    assert [k.index for k in tier.keys] == [0, 1, 2]
    assert tier.keys[0].credential is None and tier.keys[0].problem.startswith("SecretKeyMissing")
    assert tier.keys[1].credential is None and tier.keys[1].problem.startswith("SecretNotFound")
    assert tier.keys[2].credential.get_secret_value() == "sk-key-one-bbbbb"
    assert tier.credential.get_secret_value() == "sk-key-one-bbbbb"
    rep = res.reports[("default", "helper")].tiers[0]
    assert rep.resolvable
    assert [(k.index, k.resolvable, k.reason) for k in rep.keys] == [
        (0, False, "SecretKeyMissing"), (1, False, "SecretNotFound"), (2, True, None),
    ]
    assert rep.keys[0].message == "Secret keys has no key nope"
    assert rep.as_status()["keys"] == [
        {"index": 0, "state": "unresolvable", "reason": "SecretKeyMissing", "message": "Secret keys has no key nope"},
        {"index": 1, "state": "unresolvable", "reason": "SecretNotFound", "message": "Secret gone not found"},
        {"index": 2, "state": "usable"},
    ]


def test_the_tier_is_unresolvable_only_when_no_key_resolves() -> None:
    res = compile_text(source("credentialRefs: [{name: keys, key: x}, {name: keys, key: y}]") + SECRETS + CHAIN)
    tier = res.config.bindings[0].tiers[0]
    rep = res.reports[("default", "helper")].tiers[0]
    assert not rep.resolvable and rep.reason == "SecretKeyMissing"
    assert rep.message == "no key of ModelSource oa resolves: key 0: Secret keys has no key x; key 1: Secret keys has no key y"
    assert tier.problem.startswith("SecretKeyMissing")


def test_an_unmarked_secret_refuses_only_its_key() -> None:
    def lookup(ns: str, name: str, key: str) -> str | None:
        if name == "private":
            raise CredentialRefused("SecretNotMarked", f"no Secret {name} labelled switchyard.dev/credential=true")
        return {"a": "sk-key-zero-aaaa"}.get(key)

    res = compile_text(
        source("credentialRefs: [{name: private, key: a}, {name: keys, key: a}]") + CHAIN, credentials=lookup
    )
    rep = res.reports[("default", "helper")].tiers[0]
    assert rep.resolvable and [(k.index, k.reason) for k in rep.keys] == [(0, "SecretNotMarked"), (1, None)]


def test_a_single_key_compiles_exactly_as_before() -> None:
    one = compile_text(source("credentialRef: {name: keys, key: a}") + SECRETS + CHAIN)
    listed = compile_text(source("credentialRefs: [{name: keys, key: a}]") + SECRETS + CHAIN)
    tier = one.config.bindings[0].tiers[0]
    assert tier.keys is None
    assert "keys" not in tier.model_dump(mode="json")  # the wire and the version hash as before
    assert listed.config.version == one.config.version
    assert one.reports[("default", "helper")].tiers[0].keys == ()
    assert "keys" not in one.reports[("default", "helper")].tiers[0].as_status()


def test_changing_one_key_changes_the_version() -> None:
    a = compile_text(source("credentialRefs: [{name: keys, key: a}, {name: keys, key: b}]") + SECRETS + CHAIN)
    b = compile_text(source("credentialRefs: [{name: keys, key: a}, {name: keys, key: a}]") + SECRETS + CHAIN)
    assert a.config.version != b.config.version


def test_env_keys_in_standalone() -> None:
    res = compile_text(
        source("credentialRefs: [{env: KEY_A}, {env: KEY_B}]") + CHAIN, standalone=True, environ={"KEY_B": "sk-env-b"}
    )
    tier = res.config.bindings[0].tiers[0]
    assert [(k.index, k.problem and k.problem.split(":")[0]) for k in tier.keys] == [(0, "EnvNotSet"), (1, None)]
    assert tier.keys[1].credential.get_secret_value() == "sk-env-b"


def test_switchyard_check_lists_the_usable_keys_and_why_the_others_are_not() -> None:
    from switchyard.cli.standalone import report_lines

    res = compile_text(source("credentialRefs: [{name: keys, key: nope}, {name: keys, key: b}]") + SECRETS + CHAIN)
    (line,) = [x for x in report_lines(res) if x.startswith("  tier0")]
    assert line.endswith("ok; keys 1 of 2; key 0 unusable: SecretKeyMissing: Secret keys has no key nope")
    assert "sk-key" not in "\n".join(report_lines(res))
