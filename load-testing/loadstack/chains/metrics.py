"""Chain metrics beyond Locust's request stats: branch choices and ``when:`` skips, and the summary section.

Steps and whole chains are ordinary Locust requests (``chain/step`` and
``CHAIN``), so percentiles come from Locust's stats.  Branch and skip counts
are not requests (they would inflate RPS); they are counted here and travel
with Locust's worker report, like Locust's own stats.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from locust.env import Environment

from loadstack import results
from loadstack.aggregation import Aggregator


class ChainCounters(Aggregator):
    """Branch choices and ``when:`` skips per chain step, counted by the steps themselves."""

    report_key = "loadstack_chain_counters"
    observes_requests = False

    def __init__(self) -> None:
        self.branches: Counter[tuple[str, str, str]] = Counter()
        self.skips: Counter[tuple[str, str]] = Counter()
        self._pending_branches: Counter[tuple[str, str, str]] = Counter()
        self._pending_skips: Counter[tuple[str, str]] = Counter()

    def branch(self, chain: str, step: str, path: str) -> None:
        self._pending_branches[(chain, step, path)] += 1

    def skipped(self, chain: str, step: str) -> None:
        self._pending_skips[(chain, step)] += 1

    def attach(self, environment: Environment, role: str) -> None:
        super().attach(environment, role)
        environment.events.reset_stats.add_listener(self.reset)

    def drain(self) -> dict[str, Any]:
        payload = {
            "branches": [[*k, n] for k, n in self._pending_branches.items()],
            "skips": [[*k, n] for k, n in self._pending_skips.items()],
        }
        self._pending_branches, self._pending_skips = Counter(), Counter()
        return payload

    def merge(self, payload: dict[str, Any]) -> None:
        for chain, step, path, n in payload.get("branches", ()):
            self.branches[(chain, step, path)] += n
        for chain, step, n in payload.get("skips", ()):
            self.skips[(chain, step)] += n

    def reset(self, **_: Any) -> None:
        for counter in (self.branches, self.skips, self._pending_branches, self._pending_skips):
            counter.clear()


counters = ChainCounters()


def section(environment: Environment) -> dict[str, Any] | None:
    """``summary.json`` → ``chains``: per chain end-to-end figures, per-step breakdown, branches, skips."""
    counters.sync()
    entries = environment.stats.entries
    chains = sorted(name for (name, method) in entries if method == "CHAIN")
    if not chains:
        return None
    out: dict[str, Any] = {}
    for chain in chains:
        e2e = results.entry_figures(entries[(chain, "CHAIN")], histogram=False)
        prefix = f"{chain}/"
        steps = [
            {"step": name[len(prefix) :], "kind": method, **results.entry_figures(entry, histogram=False)}
            for (name, method), entry in sorted(entries.items(), key=lambda kv: kv[1].start_time)
            if name.startswith(prefix) and method != "CHAIN" and entry.num_requests
        ]
        branches: dict[str, dict[str, int]] = {}
        for (c, step, path), n in sorted(counters.branches.items()):
            if c == chain:
                branches.setdefault(step, {})[path] = n
        out[chain] = {
            "count": e2e["count"],
            "failures": e2e["failures"],
            "success_rate": round(1 - e2e["failure_rate"], 6) if e2e["count"] else None,
            "end_to_end": {
                k: e2e[k] for k in ("avg_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "rps")
            },
            "steps": steps,
            "hops": [s for s in steps if s["kind"] == "AWAIT"],
            "branches": branches,
            "skipped": {step: n for (c, step), n in sorted(counters.skips.items()) if c == chain},
        }
    return out
