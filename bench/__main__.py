"""``python -m bench [NAME ...] [--json FILE] [options]``: run the named benchmarks.

Without names, every benchmark but ``soak`` and ``users`` runs (they are long and opt-in).  Options after the
names go to each benchmark (see ``python -m bench NAME --help``); ``--json FILE`` writes every
figure (median, min, max, target, verdict) to FILE as well.

Several benchmarks run one by one, each in its own process; those whose cost is the generator's
own (``COUNTED``) then run a second pass under callgrind (``--count instructions``) when valgrind
is here, and the run ends with the judged figures' verdicts side by side: CPU time, instructions.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile

BENCHMARKS = [
    "selfcheck",
    "connectors",
    "chains",
    "exporter",
    "http",
    "scale",
    "websocket",
    "startup",
    "arrival",
    "masker",
    "soak",
    "users",
]
OPT_IN = {"soak", "users"}  # long: minutes each
# Benchmarks whose judged cost is the bench process's own, so callgrind can count it.
COUNTED = {"connectors", "chains", "exporter", "http"}


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
    if len(names) > 1 or (names[0] in COUNTED and _count(flags) is None):
        return run_each(names, flags, json_path)
    from bench import harness, instructions

    name = names[0]
    if _count(flags) == "instructions" and name not in COUNTED:
        print(
            f"--count instructions: only for {', '.join(sorted(COUNTED))} (their cost is this process's)",
            file=sys.stderr,
        )
        return 2
    if _count(flags) == "instructions" and instructions.counter() is None:
        return instructions.relaunch(
            ["-m", "bench", name, *flags] + (["--json", json_path] if json_path else [])
        )
    harness.print_machine(name, "before")
    importlib.import_module(f"bench.{name}").main(flags)
    harness.print_machine(name, "after")
    if json_path:
        harness.write_results(json_path)
    return 0


def _count(flags: list[str]) -> str | None:
    """The ``--count`` value among ``flags`` (``--count X`` or ``--count=X``), or None."""
    for i, flag in enumerate(flags):
        if flag.startswith("--count="):
            return flag.split("=", 1)[1]
        if flag == "--count" and i + 1 < len(flags):
            return flags[i + 1]
    return None


def passes(name: str, flags: list[str]) -> list[list[str]]:
    """The flag sets ``name`` runs with: as given; for a COUNTED bench without ``--count``, a CPU
    pass and (valgrind permitting) an instruction-count pass."""
    from bench import instructions

    if _count(flags) is not None or name not in COUNTED:
        return [flags]
    cpu = [*flags, "--count", "cpu"]
    reason = instructions.missing()
    if reason is not None:
        print(f"{name}: no instruction-count pass: {reason}", flush=True)
        return [cpu]
    return [cpu, [*flags, "--count", "instructions"]]


def run_each(names: list[str], flags: list[str], json_path: str | None) -> int:
    """Each benchmark (and pass) in its own process: the gevent patching, auth mode, exporter
    settings and heap of one must not leak into the next; figures merged for ``--json``."""
    figures: list = []
    worst = 0
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for name in names:
            for i, pass_flags in enumerate(passes(name, flags)):
                part = os.path.join(tmp, f"{name}-{i}.json")
                cmd = [sys.executable, "-m", "bench", name, *pass_flags, "--json", part]
                worst = max(worst, subprocess.run(cmd).returncode)
                if os.path.exists(part):
                    with open(part, encoding="utf-8") as fh:
                        figures += json.load(fh)
    print_verdicts(figures)
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(figures, fh, indent=1)
    return worst


def print_verdicts(figures: list[dict]) -> None:
    """The judged figures of this run, one line each: median (min–max) and verdict per count."""
    judged = [f for f in figures if f.get("target")]
    if not judged:
        return
    print("verdicts (median, min–max over rounds):", flush=True)
    for f in judged:
        count = f.get("count") or "measured"
        print(
            f"  {f['bench']}: {f['figure']} [{count}] {f['median']:.3f} ({f['low']:.3f}–{f['high']:.3f})"
            f" target {f['target']}: {f['verdict']}",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
