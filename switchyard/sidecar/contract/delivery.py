"""The file-delivery contract: how a sidecar in a cluster finds its config without the operator.

The operator compiles every binding of a namespace into one **bundle** and writes it
into one Secret of that namespace (``CONFIG_SECRET``, key ``BUNDLE_KEY``). The webhook
mounts that Secret read-only into the sidecar, with a downward-API file of the pod's own
labels. The sidecar reads both at start and whenever they change, and serves the
bindings whose selector matches its pod's labels (``assemble``). Nothing secret crosses
the pod network; a sidecar that starts while the operator is down serves the last
bundle written.

``assemble`` is the one definition of "what this pod's sidecar runs": the operator's plan
(``operator/plan.py``) calls it too, so the version the operator expects a pod to run and
the version the pod computes from the files are the same by construction.

Pure: no I/O, no clock. Only pydantic and ``config``, so anything may import it (the
operator's ``selection.py`` and the resource models use ``selector_matches``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from .config import SCHEMA_VERSION, CompiledBinding, CompiledConfig, spliced_digest

CONFIG_SECRET = "switchyard-config"  # one per namespace, written by the operator
BUNDLE_KEY = "bundle.json"  # the key of that Secret (a file of the mounted volume)
CONFIG_VERSION_ANNOTATION = "switchyard.dev/config-version"  # on pods: nudges the kubelet
MANAGED_BY = {"app.kubernetes.io/managed-by": "switchyard"}
LABELS_FILE = "labels"  # the downward-API file of the pod's labels

Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SelectorRequirement(_Frozen):
    key: str
    operator: Operator
    values: list[str] = Field(default_factory=list)


class Selector(_Frozen):
    """A Kubernetes label selector, as plain data (matchLabels AND matchExpressions)."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[SelectorRequirement] = Field(default_factory=list)

    def selects(self, labels: Mapping[str, str]) -> bool:
        return selector_selects(self.match_labels, [(r.key, r.operator, r.values) for r in self.match_expressions], labels)


def selector_matches(
    match_labels: Mapping[str, str], match_expressions: Iterable[tuple[str, str, Iterable[str]]], labels: Mapping[str, str]
) -> bool:
    """Kubernetes label-selector semantics: every matchLabels pair and every expression
    holds. An empty selector matches everything (``selector_selects`` is the binding rule)."""
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for key, op, values in match_expressions:
        present = key in labels
        if op == "In" and not (present and labels[key] in set(values)):
            return False
        if op == "NotIn" and present and labels[key] in set(values):
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False  # an operator this reader does not know selects nothing
    return True


def selector_selects(
    match_labels: Mapping[str, str], match_expressions: Iterable[tuple[str, str, Iterable[str]]], labels: Mapping[str, str]
) -> bool:
    """A binding's rule: an empty selector selects no pods (a binding must say which)."""
    exprs = list(match_expressions)
    if not match_labels and not exprs:
        return False
    return selector_matches(match_labels, exprs, labels)


class BundleEntry(_Frozen):
    """One binding of the namespace: which pods run it, and its compiled form with every
    alias it asks for (``assemble`` drops those an earlier binding of the same pod took)."""

    selector: Selector
    binding: CompiledBinding


class ConfigBundle(_Frozen):
    """Every binding of one namespace, credentials included (the Secret's content)."""

    schema_version: int = SCHEMA_VERSION
    namespace: str
    version: str = ""  # content hash (``with_version``)
    bindings: list[BundleEntry] = Field(default_factory=list)
    # How many pods serve each binding that has limits (by name): each sidecar enforces
    # limit / pods (docs/limits.md). Only limited bindings are listed, so scaling a binding
    # without limits never rewrites the Secret. Not part of any pod's CompiledConfig (a
    # scale event changes no pod's config version); part of this bundle's version, so the
    # operator writes it. Absent from the file when empty.
    pods: dict[str, int] = Field(default_factory=dict, exclude_if=lambda v: not v)

    def with_version(self) -> ConfigBundle:
        """A copy whose ``version`` is the hash of its content (as ``CompiledConfig``'s)."""
        reveal = {"reveal_secrets": True}
        no_profiles = {"__all__": {"binding": {"tiers": {"__all__": {"profile": True}}}}}
        content = self.model_dump(mode="json", context=reveal, exclude={"version": True, "bindings": no_profiles})
        digest = spliced_digest(
            content, ((d["binding"], e.binding) for d, e in zip(content["bindings"], self.bindings, strict=True)),
            lambda: self.model_dump(mode="json", context=reveal, exclude={"version"}),
        )
        return self.model_copy(update={"version": digest[:16]})

    def to_file(self) -> bytes:
        """The Secret's value: credentials in clear (a Secret is where they live)."""
        return orjson.dumps(self.model_dump(mode="json", context={"reveal_secrets": True}), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_file(cls, raw: bytes | str) -> ConfigBundle:
        return cls.model_validate(orjson.loads(raw))


def assemble(bundle: ConfigBundle, labels: Mapping[str, str]) -> CompiledConfig:
    """The config a pod with ``labels`` runs: the bindings selecting it, by name, each
    alias to the first binding that asks for it (the compiler's rule), versioned."""
    return assemble_bindings(e.binding for e in bundle.bindings if e.selector.selects(labels))


def assemble_bindings(bindings: Iterable[CompiledBinding]) -> CompiledConfig:
    """One config of these bindings (each with every alias it asks for), aliases settled
    (``settle_aliases``), versioned: what ``assemble`` gives for the bindings selecting a
    pod, and what the operator plans for every pod selected by the same bindings."""
    settled, _lost = settle_aliases(bindings)
    return CompiledConfig(bindings=settled).with_version()


def settle_aliases(
    bindings: Iterable[CompiledBinding],
) -> tuple[list[CompiledBinding], dict[tuple[str, str], list[tuple[str, str]]]]:
    """The bindings in (namespace, name) order, each alias kept by the first that asks for
    it (the compiler's rule); and, for each binding that lost some, which to whom:
    (namespace, name) -> [(alias, "owner-namespace/owner-name")]. A binding that keeps
    all its aliases is returned as it is."""
    owner: dict[str, str] = {}
    out: list[CompiledBinding] = []
    lost: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for b in sorted(bindings, key=lambda b: (b.namespace, b.name)):
        mine = f"{b.namespace}/{b.name}"
        aliases = [a for a in b.aliases if owner.setdefault(a, mine) == mine]
        if len(aliases) == len(b.aliases):
            out.append(b)
            continue
        out.append(b.model_copy(update={"aliases": aliases}))
        lost[(b.namespace, b.name)] = [(a, owner[a]) for a in b.aliases if owner[a] != mine]
    return out, lost


def parse_labels(text: str) -> dict[str, str]:
    """The downward API's labels file: one ``key="value"`` per line (Go-quoted value)."""
    labels: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.strip().partition("=")
        if not sep or not key:
            continue
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            try:
                value = orjson.loads(raw)  # Go's %q of a label value is valid JSON for label characters
            except orjson.JSONDecodeError:
                value = raw[1:-1]
            labels[key] = str(value)
        else:
            labels[key] = raw
    return labels
