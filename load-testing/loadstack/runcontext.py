"""The contract between ``loadstack run`` and the Locust processes it starts.

The runner passes everything through the environment (``LOADSTACK_RUN_ID``,
``LOADSTACK_RUN_DIR``, ``LOADSTACK_RUN_SETTINGS``) because that is the one
channel that works the same for local processes, ``--processes`` forks and
containers.  A Locust process started by hand simply has no run context and
gets a generated run id.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def new_run_id() -> str:
    """Sortable and unique enough: ``20261122T101500Z-3fa9c1``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.match(run_id):
        raise ValueError(
            f"invalid run id {run_id!r}: use 1-64 letters, digits, '.', '_' or '-' (it names files and keys)"
        )
    return run_id


@dataclass(frozen=True)
class RunContext:
    run_id: str
    run_dir: Path | None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def profile(self) -> str:
        return str(self.settings.get("profile") or "adhoc")


@cache
def current() -> RunContext:
    """The run this process belongs to (cached: the environment does not change mid-run)."""
    run_id = os.environ.get("LOADSTACK_RUN_ID") or new_run_id()
    os.environ.setdefault("LOADSTACK_RUN_ID", run_id)
    run_dir = os.environ.get("LOADSTACK_RUN_DIR")
    raw = os.environ.get("LOADSTACK_RUN_SETTINGS")
    settings = json.loads(raw) if raw else {}
    return RunContext(run_id=run_id, run_dir=Path(run_dir) if run_dir else None, settings=settings)
