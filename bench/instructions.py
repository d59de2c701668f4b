"""Instructions per operation, counted by valgrind's callgrind: the repeatable cost figure.

CPU time on a shared VM moves by ±10 % from one round to the next (the host schedules our
vCPUs among its other guests), so a ratio near its target lands on either side of it depending
on the run.  The number of instructions the generator executes for an operation does not depend
on what else the machine does: the same code path costs the same count, give or take the
I/O-driven variation of the event loop (well under 1 %).

``python -m bench NAME --count instructions`` re-runs the benchmark under
``valgrind --tool=callgrind`` with instrumentation off during start-up (imports run at a
few-times slowdown, not fifty), and the harness's :class:`~bench.harness.Meter` then reads
instructions instead of CPU seconds: each reading asks callgrind to dump its counters since the
last dump (a client request, synchronous, through a small C helper compiled here once with
``gcc`` against valgrind's ``callgrind.h``) and adds the dump's total.

Under callgrind everything in the generator runs about 50 times slower while the servers do
not, so wall-clock figures (throughput) of that pass mean nothing; only the counts do.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ENV_DIR = "LOADSTACK_BENCH_CALLGRIND_DIR"  # where the dumps go; set by relaunch()
OUT_NAME = "callgrind.out"
HELPER_SOURCE = """
#include <valgrind/callgrind.h>
int ls_on_valgrind(void) { return RUNNING_ON_VALGRIND; }
void ls_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void ls_dump(void) { CALLGRIND_DUMP_STATS; }
void ls_zero(void) { CALLGRIND_ZERO_STATS; }
"""
HEADER = Path("/usr/include/valgrind/callgrind.h")
CACHE = Path.home() / ".cache" / "loadstack-bench"


def missing() -> str | None:
    """Why instruction counting cannot run here (None when it can)."""
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (apt-get install valgrind)"
    if shutil.which("gcc") is None:
        return "gcc is not installed (needed to build the small callgrind helper)"
    if not HEADER.exists():
        return f"{HEADER} is missing (Debian's valgrind package ships it)"
    return None


def helper_library() -> Path:
    """The compiled helper, built once per source text into ~/.cache/loadstack-bench."""
    digest = hashlib.sha256(HELPER_SOURCE.encode()).hexdigest()[:12]
    lib = CACHE / f"callgrind-helper-{digest}.so"
    if not lib.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "helper.c"
            src.write_text(HELPER_SOURCE, encoding="ascii")
            built = Path(tmp) / lib.name
            subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(built), str(src)], check=True)
            shutil.move(str(built), lib)
    return lib


def read_total(dump: Path) -> int:
    """The instruction total of one callgrind dump file (its ``summary:`` line)."""
    with dump.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise ValueError(f"{dump}: no 'summary:' line (not a callgrind dump?)")


class Counter:
    """Cumulative instructions of this process since instrumentation started, read by dumping."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lib = ctypes.CDLL(str(helper_library()))
        self._seen: set[str] = set()
        self.total = 0

    @property
    def active(self) -> bool:
        return bool(self._lib.ls_on_valgrind())

    def start(self) -> None:
        self._lib.ls_start()

    def read(self) -> int:
        """Dump (counters since the last dump), add the new dump files' totals, then zero the
        counters: reading a dump costs millions of instructions, which belong to no window."""
        self._lib.ls_dump()
        for path in sorted(self.directory.glob(OUT_NAME + ".*")):
            if path.name not in self._seen:
                self._seen.add(path.name)
                self.total += read_total(path)
                path.unlink()  # dumps hold every function's costs: megabytes each, read once
        self._lib.ls_zero()
        return self.total


_counter: Counter | None = None
_looked = False


def counter() -> Counter | None:
    """The process's counter when it runs under :func:`relaunch`, else None (decided once: the
    servers a counted bench starts inherit its environment but not valgrind)."""
    global _counter, _looked
    if not _looked:
        _looked = True
        if os.environ.get(ENV_DIR):
            candidate = Counter(Path(os.environ[ENV_DIR]))
            if candidate.active:
                candidate.start()
                candidate.read()  # everything before this point (start-up) stays out of the count
                _counter = candidate
    return _counter


def relaunch(python_args: list[str]) -> int:
    """Run ``python <python_args>`` under callgrind, its counter on; return its exit code."""
    reason = missing()
    if reason is not None:
        print(f"--count instructions: {reason}", file=sys.stderr)
        return 2
    helper_library()  # build outside valgrind
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as tmp:
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--dump-instr=no",
            "--dump-line=no",
            f"--callgrind-out-file={tmp}/{OUT_NAME}",
            "--quiet",
            os.path.realpath(sys.executable),  # the interpreter itself, not a launcher script
            *python_args,
        ]
        env = {**os.environ, ENV_DIR: tmp}
        return subprocess.run(cmd, env=env).returncode
