"""The run a Locust process belongs to: its id, its settings, and where its results go.

A process finds its run in its environment (:mod:`loadstack.settings`), most
specific first:

* ``LOADSTACK_RUN_SETTINGS``: the resolved run, as a launcher (``loadstack run``,
  ``loadstack master``) passes it to the Locust processes it starts;
* ``LOADSTACK_PROFILE``: a profile to resolve here, for a master or worker
  started by anything else (plain ``locust``, a container, a Kubernetes pod);
* neither: an ad-hoc run with loadstack's defaults and no gates.

A worker then adopts the master's run when it connects (see
:func:`loadstack.plugin.join`), so a run has one id even when nobody set
``LOADSTACK_RUN_ID`` on every host.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from loadstack import masking, paths, profiles, settings
from loadstack.profiles import RunSettings

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def new_run_id() -> str:
    """Sortable and unique enough: ``20261122T101500Z-3fa9c1``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise ValueError(
            f"invalid run id {run_id!r}: use 1-64 letters, digits, '.', '_' or '-' (it names files and keys)"
        )
    return run_id


@dataclass(frozen=True)
class RunContext:
    run_id: str
    settings: RunSettings
    results_root: Path

    @property
    def profile(self) -> str:
        return self.settings.profile

    @property
    def run_dir(self) -> Path:
        return self.results_root / self.run_id


_current: RunContext | None = None


def load(config: settings.Settings | None = None) -> RunContext:
    """The run described by an environment (see the module docstring)."""
    config = config or settings.current()
    if config.run_settings:
        run = RunSettings.model_validate_json(config.run_settings)
    elif config.profile:
        run = profiles.resolve(config.profile, env=config)
    else:
        run = RunSettings(
            host=config.host,
            allow_remote=config.allow_remote,
            skip_seed=config.skip_seed,
            skip_teardown=config.skip_teardown,
            sut_version=config.sut_version,
        )
    run_id = check_run_id(config.run_id or new_run_id())
    masking.current().add(*run.secrets())
    return RunContext(run_id=run_id, settings=run, results_root=paths.results_root())


def current() -> RunContext:
    """This process's run (resolved on first use)."""
    global _current
    if _current is None:
        _current = load()
    return _current


def adopt(run_id: str, run: RunSettings) -> RunContext:
    """Make this process part of another process's run (a worker joining its master's run)."""
    global _current
    masking.current().add(*run.secrets())
    _current = RunContext(run_id=check_run_id(run_id), settings=run, results_root=paths.results_root())
    return _current
