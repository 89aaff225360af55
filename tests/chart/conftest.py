"""Chart, dashboard, alert and image checks (no cluster needed): the fixtures live in
chart_helpers.py (a module name unique across tests/, unlike `conftest`)."""

from chart_helpers import helm, live_sidecar, prometheus, prometheus_bin, promtool, render  # noqa: F401  (fixtures)
