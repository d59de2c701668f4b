"""``python -m bench [NAME ...] [--json FILE] [options]``: run the named benchmarks.

Without names, every benchmark but ``soak`` runs (soak is long and opt-in).  Options after the
names go to each benchmark (see ``python -m bench NAME --help``); ``--json FILE`` writes every
figure (median, min, max, target, verdict) to FILE as well.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile

BENCHMARKS = ["connectors", "chains", "exporter", "http", "scale", "websocket", "startup", "arrival", "soak"]
OPT_IN = {"soak"}


def main(argv: list[str]) -> int:
    # Leading words are benchmark names; everything from the first flag on goes to each benchmark.
    split = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    names, flags = argv[:split] or [b for b in BENCHMARKS if b not in OPT_IN], argv[split:]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(BENCHMARKS)}", file=sys.stderr
        )
        return 2
    json_path = None
    if "--json" in flags:
        i = flags.index("--json")
        if i + 1 >= len(flags):
            print("--json needs a file name", file=sys.stderr)
            return 2
        json_path = flags[i + 1]
        flags = flags[:i] + flags[i + 2 :]
    if len(names) > 1:
        return run_each(names, flags, json_path)
    from bench import harness

    name = names[0]
    harness.print_machine(name, "before")
    importlib.import_module(f"bench.{name}").main(flags)
    harness.print_machine(name, "after")
    if json_path:
        harness.write_results(json_path)
    return 0


def run_each(names: list[str], flags: list[str], json_path: str | None) -> int:
    """Several benchmarks: each in its own process (the gevent patching, auth mode, exporter
    settings and heap of one must not leak into the next); figures merged for ``--json``."""
    figures: list = []
    worst = 0
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for name in names:
            part = os.path.join(tmp, f"{name}.json")
            code = subprocess.run([sys.executable, "-m", "bench", name, *flags, "--json", part]).returncode
            worst = max(worst, code)
            if os.path.exists(part):
                with open(part, encoding="utf-8") as fh:
                    figures += json.load(fh)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(figures, fh, indent=1)
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
