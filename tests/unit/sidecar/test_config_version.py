"""The version of a compiled config (and of a namespace bundle) is the sha256 of its full
JSON with sorted keys and credentials in clear. ``with_version`` gets there without
dumping every tier's profile (each distinct profile serialised once, spliced in): the
versions must be those of the full dump, on the examples and on generated namespaces."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from switchyard.api.manifests import load_manifests
from switchyard.compiler import compile_config
from switchyard.compiler.compile import compile_bindings
from switchyard.sidecar.contract import config as contract
from switchyard.sidecar.contract.config import CompiledConfig
from switchyard.sidecar.contract.delivery import BundleEntry, ConfigBundle, Selector

import varied_namespace

REPO = Path(__file__).resolve().parents[3]


def full_dump_version(model: Any) -> str:
    """The definition: every field dumped, profiles included, keys sorted."""
    content = model.model_dump(mode="json", context={"reveal_secrets": True}, exclude={"version"})
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def configs() -> list[tuple[str, CompiledConfig]]:
    out = []
    for folder in ("demo", "hosted", "local"):
        rs, errors = load_manifests(REPO / "examples" / folder)
        assert not errors
        out.append((folder, compile_config(rs, standalone=True, environ={"OPENAI_API_KEY": "sk-x"}).config))
    for seed in (1, 2, 3):
        v = varied_namespace.build(seed)
        out.append((f"varied-{seed}", compile_config(v.resources, catalogs=v.catalogs).config))
        for b in v.resources.bindings[:10]:  # one-binding configs too
            out.append((f"varied-{seed}-{b.name}", compile_config(v.resources, only=[(b.namespace, b.name)]).config))
    out.append(("empty", CompiledConfig().with_version()))
    return out


@pytest.mark.parametrize(("name", "config"), configs(), ids=lambda x: x if isinstance(x, str) else "")
def test_the_version_is_the_hash_of_the_full_dump(name: str, config: CompiledConfig) -> None:
    assert config.version == full_dump_version(config) != ""
    again = CompiledConfig.from_wire(config.to_wire())  # new objects: no profile shared by identity
    assert again.with_version().version == config.version


def test_the_bundle_version_is_the_hash_of_the_full_dump() -> None:
    v = varied_namespace.build(4)
    compiled = compile_bindings(v.resources, catalogs=v.catalogs)
    bundle = ConfigBundle(namespace="team", bindings=[
        BundleEntry(selector=Selector(match_labels={"app": name}), binding=cb) for (_, name), (cb, _) in compiled.items()
    ]).with_version()
    assert bundle.version == full_dump_version(bundle)
    assert ConfigBundle(namespace="team").with_version().version == full_dump_version(ConfigBundle(namespace="team"))


@pytest.mark.parametrize("index", ["0", "1", "99"])
def test_a_value_spelled_like_a_placeholder_does_not_change_the_version(index: str) -> None:
    config = compile_config(varied_namespace.build(1).resources).config
    placeholder = f"{contract._MARK}{contract._NONCE}-{index}{contract._MARK}"
    b = config.bindings[0]
    tier = b.tiers[0].model_copy(update={"headers": {"x": placeholder, placeholder: "y"}})
    odd = CompiledConfig(bindings=[b.model_copy(update={"tiers": [tier, *b.tiers[1:]]}), *config.bindings[1:]])
    assert odd.with_version().version == full_dump_version(odd)
