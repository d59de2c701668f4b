"""Native runs: the target, a Locust master and N workers as local processes.

Each process is a :class:`~loadstack.processes.Child` (own process group,
dies with this one, masked log under ``results/<run_id>/logs/``).  The
master's progress, report and error lines are relayed to the console.
"""

from __future__ import annotations

import signal
import sys

from loadstack import exitcodes, masking, safety, settings
from loadstack.launchers import locust
from loadstack.launchers.base import Prepared, RunError, say
from loadstack.processes import STARTUP_LIMIT_S, Child, free_port, wait_until
from loadstack.profiles import RunSettings
from loadstack.targets import Process, Target

# The master's loggers whose lines the console shows (see loadstack.master).
PROGRESS, REPORT = "/loadstack.progress: ", "/loadstack.report: "


class NativeLauncher:
    name = "native"

    def __init__(self) -> None:
        self.masker = masking.current()
        self.target: list[Child] = []
        self.master: Child | None = None
        self.workers: list[Child] = []
        self.master_port = free_port()
        self.web_url: str | None = None
        self.env_overrides: dict[str, str] = {}
        self.target_port = 0

    def check_inputs(self, prepared: Prepared) -> None:
        """Nothing beyond the master's own checks (see :func:`loadstack.lifecycle.check_inputs`)."""

    # -- start ---------------------------------------------------------------------------------
    def target_url(self, target: Target) -> str:
        """Where the target will answer: its host, or a free local port for the processes we start."""
        if target.host:
            return target.host
        self.target_port = free_port()
        return f"http://127.0.0.1:{self.target_port}"

    def start_target(self, target: Target, prepared: Prepared) -> None:
        self.masker.add(*target.shared_env.values())
        self.env_overrides = target.shared_env
        processes = target.processes(self.target_port) if not target.host else []
        if not processes:
            return
        first = processes[0]
        self._start(first, prepared)
        health = first.health_url
        assert health is not None
        wait_until(lambda: not self.target[0].alive() or _answers(health), timeout=STARTUP_LIMIT_S)
        if not self.target[0].alive():
            raise RunError(f"{first.name} failed to start:\n" + "\n".join(self.target[0].tail[-10:]))
        url = f"http://127.0.0.1:{self.target_port}"
        for companion in target.companions(url):
            self._start(companion, prepared)
        say(target.describe(url))

    def _start(self, process: Process, prepared: Prepared) -> None:
        env = settings.current().child_environment(
            {**self.env_overrides, "LOADSTACK_RUN_ID": prepared.run_id}
        )
        log = prepared.run_dir / "logs" / f"{process.name}.log"
        self.target.append(Child(process.name, process.argv, env=env, log_path=log, masker=self.masker))

    def start_locust(self, run: RunSettings, prepared: Prepared, *, tied_to_parent: bool = True) -> None:
        env = locust.environment(
            run, prepared.run_id, prepared.results_root, launcher=self.name, metrics=prepared.metrics
        )
        env.update(self.env_overrides)
        logs = prepared.run_dir / "logs"
        request = prepared.request
        argv = locust.master_argv(
            run,
            headless=not request.web_ui,
            expect_workers=run.workers,
            bind_port=self.master_port,
            web_port=request.web_port,
        )
        self.master = Child(
            "master", argv, env=env, log_path=logs / "master.log", masker=self.masker, on_line=self._relay,
            tied_to_parent=tied_to_parent,
        )  # fmt: skip
        worker = locust.worker_argv(run, master_host="127.0.0.1", master_port=self.master_port)
        for i in range(1, run.workers + 1):
            self.workers.append(
                Child(f"worker-{i}", worker, env=env, log_path=logs / f"worker-{i}.log", masker=self.masker,
                      tied_to_parent=tied_to_parent)
            )  # fmt: skip
        if request.web_ui:
            self.web_url = f"http://127.0.0.1:{request.web_port}"
        if prepared.metrics:
            config = settings.current()
            say(f"metrics: http://{config.metrics_bind}:{config.metrics_port}/metrics")

    def _relay(self, raw: str, masked: str) -> None:
        """Echo what a user watching the run needs: progress, the report, warnings; errors to stderr."""
        message = masked.split(": ", 1)[-1]
        if PROGRESS in raw:
            say("  " + message)
        elif REPORT in raw:
            say(message)
        elif "/ERROR/" in raw or "/CRITICAL/" in raw:
            sys.stderr.write(message + "\n")
        elif "/WARNING/" in raw:
            say("  " + masked.split("] ", 1)[-1])

    # -- wait and stop ----------------------------------------------------------------------
    def interrupt(self) -> None:
        if self.master is not None:
            self.master.send_signal(signal.SIGINT)

    def wait(self) -> int:
        assert self.master is not None
        code = self.master.wait()
        return exitcodes.FAILURES if code is None else code

    def collect(self, prepared: Prepared) -> None:
        """Nothing to fetch: the master wrote straight into ``results/<run_id>/``."""

    def stop(self) -> None:
        """Master first (SIGINT: it writes its results), then workers, then the target."""
        if self.master is not None:
            self.master.stop(first=signal.SIGINT, grace=30, then=signal.SIGTERM)
        for child in [*self.workers, *reversed(self.target)]:
            child.stop(first=signal.SIGTERM, grace=10)

    def children(self) -> list[Child]:
        return [c for c in (*self.target, self.master, *self.workers) if c is not None]


def _answers(url: str) -> bool:
    """Whether a target loadstack started answers its health URL (on loopback: no proxy, no redirect away)."""
    try:
        with safety.urlopen(url, allow_remote=False, timeout=1) as resp:
            return resp.status == 200
    except (OSError, safety.RemoteTargetError):
        return False
