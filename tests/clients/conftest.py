"""The `clients` tier: the real coding CLIs (Claude Code, Codex CLI, Gemini CLI) run
headless through `switchyard run` against the simulator.

The CLIs are pinned npm releases installed by `hack/coding_clients.py` into
`~/.cache/switchyard/clients/<name>-<version>` (outside the repository; reused once
there). Without npm, or when the install fails, the tests are skipped with the reason;
with `SWITCHYARD_CLIENTS=1` (CI, when npm is present) they fail instead.
`SWITCHYARD_CLIENTS=0` skips the tier without trying to install anything.

Every test collected under tests/clients gets the `clients` marker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.clients)


@pytest.fixture(autouse=True)
def _client_available(request: pytest.FixtureRequest) -> None:
    """Skip (or fail, with SWITCHYARD_CLIENTS=1) before anything starts when the test
    module's CLI (its `CLIENT`) cannot be had; installs it on first use."""
    from realcli import client_binary

    name = getattr(request.module, "CLIENT", None)
    if name is not None:
        client_binary(name)
