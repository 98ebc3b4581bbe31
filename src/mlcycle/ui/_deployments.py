"""The deployments page: what each model serves, to whom, and how its servers are doing.

What serves is the registry's aliases and the loop's traffic split (the
store); how it is doing is the prediction log's recent window (requests,
rate, latency percentiles, error rate per version), read through
:func:`mlcycle.predictions.recent_traffic`, which reads only that window.
A server records nothing else: a version that answered no request in the
window shows no figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlcycle.predictions import RecentTraffic, VersionTraffic, recent_traffic
from mlcycle.store import STATE_DIR, LoopState, Traffic, read_state, read_traffic

if TYPE_CHECKING:
    from mlcycle.project import Project

__all__ = ["DEFAULT_WINDOW", "WINDOWS", "Deployment", "deployments"]

# The windows the page offers, in seconds: a fixed few keep the reading bounded.
WINDOWS = {"5m": 300, "15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600}
DEFAULT_WINDOW = "1h"
LIVE_S = 10  # a followed page reloads this often
# Where a project's prediction log lives (mlcycle.serve, mlcycle.batch, mlcycle.monitor).
LOG_FOLDER = "log"


@dataclass
class Deployment:
    """One model: its aliases, traffic split, loop phase, and its versions' recent figures."""

    model: str
    aliases: dict[str, int]
    traffic: Traffic
    loop: LoopState
    # version -> source (serve, error, shadow, batch) -> figures
    versions: dict[int, dict[str, VersionTraffic]] = field(default_factory=dict)
    error_rates: dict[int, float | None] = field(default_factory=dict)
    plot: dict[str, Any] | None = None

    def aliases_of(self, version: int) -> list[str]:
        return sorted(a for a, v in self.aliases.items() if v == version)


def deployments(project: Project, window: str) -> tuple[list[Deployment], RecentTraffic]:
    """Every registered model (and any other the log names), with the window's figures."""
    now = datetime.now(UTC)
    since = now - timedelta(seconds=WINDOWS[window])
    recent = recent_traffic(project.root / STATE_DIR / LOG_FOLDER, since, now=now)
    registered = {m.name: m.aliases for m in project.store.registry.list_models()}
    logged = {v.model for v in recent.versions}
    found = []
    for name in sorted(registered.keys() | logged):
        d = Deployment(
            model=name,
            aliases=dict(registered.get(name, {})),
            traffic=read_traffic(project.store, name),
            loop=read_state(project.store, name),
        )
        for v in recent.versions:
            if v.model == name:
                d.versions.setdefault(v.version, {})[v.source] = v
        d.error_rates = {n: recent.error_rate(name, n) for n in d.versions}
        lines = recent.per_minute.get(name)
        if lines:
            d.plot = {
                "title": "requests per minute",
                "y": "requests",
                "range": [since.isoformat(), now.isoformat()],
                "barmode": "stack",
                "traces": [
                    {
                        "name": line,
                        "type": "bar",
                        "width": 60_000,  # one minute, in ms
                        "x": [p[0] for p in points],
                        "y": [p[1] for p in points],
                    }
                    for line, points in lines.items()
                ],
            }
        found.append(d)
    return found, recent
