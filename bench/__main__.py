"""``python -m bench [NAME ...]``: run the named benchmarks (default: all)."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["connectors", "chains", "exporter", "arrival"]


def main(argv: list[str]) -> int:
    # Leading words are benchmark names; everything from the first flag on goes to each benchmark.
    split = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    names, flags = argv[:split] or BENCHMARKS, argv[split:]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(BENCHMARKS)}", file=sys.stderr
        )
        return 2
    for name in names:
        importlib.import_module(f"bench.{name}").main(flags)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
