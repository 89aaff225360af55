"""The operator imports nothing from the sidecar but its contracts (and the network guard).

The sidecar's contracts (``switchyard.sidecar.contract.*``: the compiled config in, the
status report out) are what the two sides share; everything else in ``sidecar/`` is the
data plane and may change without the operator noticing. Checked twice: every import
statement written in ``operator/`` (including those inside functions), and what importing
every operator module actually loads (which catches an import through a neighbour, such
as the compiler).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import switchyard.operator

OPERATOR = Path(switchyard.operator.__file__).resolve().parent
ALLOWED = ("switchyard.sidecar.contract", "switchyard.netguard")


def _allowed(module: str) -> bool:
    return any(module == a or module.startswith(a + ".") for a in ALLOWED)


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
            out.extend(f"{node.module}.{a.name}" for a in node.names if node.module == "switchyard.sidecar")
    return out


def test_operator_sources_import_only_the_sidecar_contracts() -> None:
    found = {
        f"{path.name}: {module}"
        for path in sorted(OPERATOR.glob("*.py"))
        for module in _imports(path)
        if module.startswith("switchyard.sidecar") and not _allowed(module)
    }
    assert not found


def test_importing_the_operator_loads_no_other_sidecar_module() -> None:
    modules = [f"switchyard.operator.{p.stem}" for p in sorted(OPERATOR.glob("*.py")) if p.stem != "__init__"]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('switchyard.sidecar'))))\n"
    )
    done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(done.stdout.split())
    assert loaded  # the contracts, at least: the check ran
    assert {m for m in loaded if m not in ("switchyard.sidecar", *ALLOWED) and not _allowed(m)} == set()
