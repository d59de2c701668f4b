"""Native runs: demo platform (when no host is given), a Locust master and N workers as processes.

Distribution is Locust's own ``--master``/``--worker``; loadstack only starts
the processes, passes the run context through the environment, relays a
compact progress line and stops everything in order.  ``loadstack run`` is a
headless run; ``loadstack ui`` keeps the same stack up with Locust's web UI.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from loadstack import auth, gates, paths, profiles, results, runcontext, safety
from loadstack.auth import preflight
from loadstack.configfile import ConfigError
from loadstack.data.seed import seed_customers
from loadstack.data.teardown import teardown as teardown_run
from loadstack.masking import Masker
from loadstack.processes import Child, free_port, port_open, wait_until
from loadstack.report import history

EXIT_OK, EXIT_FAILURES, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130
# Environment variables worth recording in run-metadata.json (masked).
RECORDED_ENV_PREFIXES = ("LOADSTACK_", "LOCUST_", "AUTH_")
# Backend connection settings the users read; checked against the local-only rule before a run.
BACKEND_URLS = {
    "LOADSTACK_POSTGRES_DSN": "PostgreSQL",
    "LOADSTACK_AMQP_URL": "RabbitMQ",
    "LOADSTACK_REDIS_URL": "Redis",
}


class RunError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_FAILURES) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class RunRequest:
    profile: str = "smoke"
    users: int | None = None
    spawn_rate: float | None = None
    run_time: str | None = None
    host: str | None = None
    workers: int | None = None
    run_id: str | None = None
    results_dir: str | None = None
    allow_remote: bool = False
    web_ui: bool = False
    web_port: int = 8089
    skip_seed: bool = False
    skip_teardown: bool = False
    metrics: bool = True
    sut_version: str | None = None
    scenario: str = "run"  # run | seed-only
    auth_mode: str | None = None  # none | oauth2 | local; default: AUTH_MODE or the profile's auth:
    # Container roles (``loadstack master`` / ``loadstack worker``): workers run elsewhere and
    # reach the master over the compose network.
    external_workers: bool = False
    bind: str = "127.0.0.1"
    master_host: str = "127.0.0.1"
    master_port: int | None = None


def say(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


class Stack:
    """The processes of one run and the order in which they start and stop."""

    def __init__(
        self, request: RunRequest, settings: profiles.RunSettings, run_id: str, run_dir: Path
    ) -> None:
        self.request = request
        self.settings = settings
        self.run_id = run_id
        self.run_dir = run_dir
        self.masker = Masker.from_env({**os.environ, **settings.env})
        self.demo: Child | None = None
        self.consumer: Child | None = None
        self.master: Child | None = None
        self.workers: list[Child] = []
        self.host = settings.host
        self.master_port = request.master_port or free_port()
        self.web_url: str | None = None
        self._stopping = threading.Event()
        # Secrets made up for this run (a client secret shared with the demo platform): env only.
        self.secret_env: dict[str, str] = {}

    # -- environment -----------------------------------------------------------
    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.settings.env)
        env.update(self.secret_env)
        if not self.request.metrics:
            env["LOCUST_METRICS_EXPORT"] = "0"
        else:
            env.setdefault("LOCUST_METRICS_EXPORT", "1")
        env.update(
            LOADSTACK_RUN_ID=self.run_id,
            LOADSTACK_RUN_DIR=str(self.run_dir.resolve()),
            LOADSTACK_RUN_SETTINGS=json.dumps(self.settings.to_dict()),
            PYTHONUNBUFFERED="1",
        )
        return env

    def locustfiles(self) -> str:
        files = [paths.hooks_locustfile()]
        if self.settings.shaped:
            files.append(paths.stages_locustfile())
        files.append(Path(self.settings.locustfile))
        return ",".join(str(f) for f in files)

    def user_class_args(self) -> list[str]:
        weights = self.settings.user_classes or {}
        return [name for name, weight in weights.items() if weight > 0]

    # -- checks before anything starts -----------------------------------------
    def check_inputs(self) -> list[str]:
        """Import the locustfile once (``locust --list``) and validate chain files, in subprocesses.

        Both import Locust, which gevent-patches whatever imports it; the runner stays unpatched.
        A broken input is exit status 2 before anything starts.
        """
        env = self.child_env()
        checks = {
            "locustfile": [
                sys.executable,
                "-m",
                "locust",
                "-f",
                self.locustfiles(),
                "--list",
                "--skip-log-setup",
            ],
        }
        chain_files = [c["path"] for c in self.settings.chains or []]
        if chain_files:
            checks["chains"] = [sys.executable, "-m", "loadstack", "chain", "validate", *chain_files]
        procs = {
            name: subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, cmd in checks.items()
        }
        outputs = {name: proc.communicate(timeout=120) for name, proc in procs.items()}
        if "chains" in procs and procs["chains"].returncode != 0:
            raise RunError(self.masker(outputs["chains"][1].strip()), EXIT_BAD_INPUT)
        out, err = outputs["locustfile"]
        if procs["locustfile"].returncode != 0:
            tail = "\n".join(self.masker((out + err).strip()).splitlines()[-12:])
            raise RunError(
                f"{self.settings.locustfile}: the locustfile failed to load:\n{tail}", EXIT_BAD_INPUT
            )
        available = [line.strip() for line in out.splitlines()[1:] if line.strip()]
        missing = [c for c in self.user_class_args() if c not in available]
        if missing:
            raise RunError(
                f"{self.settings.profile_file}: user_classes: {', '.join(missing)} not found in "
                f"{self.settings.locustfile} (available: {', '.join(available) or 'none'})",
                EXIT_BAD_INPUT,
            )
        self.check_seed_needed(chain_files)
        self.check_gate_targets(available, chain_files)
        if self.host:  # with the built-in demo, start_demo() fills in what is missing
            try:
                auth.check_settings(self.settings.auth, env)
            except auth.AuthConfigError as exc:
                raise RunError(str(exc), EXIT_BAD_INPUT) from None
        return available

    # -- auth ----------------------------------------------------------------------
    def _made_up(self, name: str) -> str:
        value = self.secret_env.get(name) or os.environ.get(name) or secrets.token_urlsafe(32)
        self.secret_env[name] = value
        self.masker.add(value)
        return value

    def demo_auth_env(self) -> dict[str, str]:
        """Make the demo platform trust this run's credentials; invent the secrets nobody gave."""
        a = self.settings.auth
        if a["mode"] == "oauth2":
            a["client_id"] = a.get("client_id") or "loadstack"
            return {
                "LOADSTACK_DEMO_OAUTH_CLIENT_ID": a["client_id"],
                "LOADSTACK_DEMO_OAUTH_CLIENT_SECRET": self._made_up(auth.CLIENT_SECRET_ENV),
            }
        if a["mode"] == "local":
            env = {"LOADSTACK_DEMO_LOCAL_JWT_ISSUER": str(a["issuer"])}
            if a["algorithm"] == "RS256" and a.get("key_file"):
                env["LOADSTACK_DEMO_LOCAL_JWT_KEY_FILE"] = str(a["key_file"])
            else:
                env["LOADSTACK_DEMO_LOCAL_JWT_SECRET"] = self._made_up(auth.JWT_SECRET_ENV)
            return env
        return {}

    def check_auth(self) -> None:
        """One token, shown once to the target: a target that refuses it stops the run here (exit 2)."""
        a = self.settings.auth
        if a["mode"] == "none":
            return
        env = {**os.environ, **self.settings.env, **self.secret_env}
        allow_remote = env.get("LOADSTACK_ALLOW_REMOTE") == "1"
        try:
            if a.get("token_url"):
                safety.check_target(a["token_url"], allow_remote=allow_remote, what="token URL")
            say(self.masker(preflight.check(a, str(self.host), env)))
        except (auth.AuthConfigError, ValueError) as exc:
            raise RunError(self.masker(str(exc)), EXIT_BAD_INPUT) from None

    def check_gate_targets(self, user_classes: list[str], chain_files: list[str]) -> None:
        """Gates on a user class or a chain that cannot exist in this run are bad input (exit 2)."""
        chain_names = set()
        for path in chain_files:
            with open(path, encoding="utf-8") as fh:
                chain_names.add((yaml.safe_load(fh) or {}).get("name"))
        for gate in self.settings.gates:
            target, src = gate["target"], gate.get("source", {})
            where = f"{src.get('file')}:{src.get('line')}: {src.get('field')}.target"
            if target.get("user_class") and target["user_class"] not in user_classes:
                raise RunError(
                    f"{where}: user_class {target['user_class']!r} is not in the locustfile "
                    f"(available: {', '.join(user_classes)})",
                    EXIT_BAD_INPUT,
                )
            if target.get("chain") and target["chain"] not in chain_names:
                raise RunError(
                    f"{where}: chain {target['chain']!r} is not one of this run's chains "
                    f"({', '.join(sorted(n for n in chain_names if n)) or 'none'})",
                    EXIT_BAD_INPUT,
                )

    def check_seed_needed(self, chain_files: list[str]) -> None:
        if self.settings.seed:
            return
        for path in chain_files:
            with open(path, encoding="utf-8") as fh:
                doc = yaml.safe_load(fh) or {}
            if isinstance(doc, dict) and doc.get("seed"):
                raise RunError(
                    f"{self.settings.profile_file}: seed: missing — chain {path} draws seeded customers "
                    f"(seed: {doc['seed']}); add e.g. `seed: {{customers: 200}}` to the profile",
                    EXIT_BAD_INPUT,
                )

    # -- seed and teardown -------------------------------------------------------
    def seed(self) -> dict[str, Any]:
        spec = self.settings.seed or {}
        if not spec.get("register_path"):
            return {"customers": spec.get("customers"), "registered": False}
        count = int(spec["customers"])
        say(f"seed: creating {count} synthetic customers on {self.host} …")
        report = seed_customers(
            str(self.host),
            self.run_id,
            count,
            seed=int(spec.get("seed") or 1234),
            register_path=spec["register_path"],
            progress=lambda done, total: (
                say(f"  seed: {done}/{total}") if total >= 200 and done < total else None
            ),
        )
        say(f"seed: {report.created} created, {report.existing} already there")
        if not report.ok:
            raise RunError(
                f"seeding failed ({len(report.errors)} errors), first: {self.masker(report.errors[0])}"
            )
        return {"customers": count, "created": report.created, "existing": report.existing}

    def teardown(self) -> dict[str, Any]:
        allow_remote = self.settings.env.get("LOADSTACK_ALLOW_REMOTE") == "1"
        report = teardown_run(self.run_id, {**os.environ, **self.settings.env}, allow_remote=allow_remote)
        say(f"teardown: {self.masker(report.line())}")
        return self.masker.mask_obj(report.as_dict())

    # -- start -----------------------------------------------------------------
    def start_demo(self) -> None:
        port = free_port()
        cmd = [sys.executable, "-m", "loadstack", "demo", "serve", "--host", "127.0.0.1", "--port", str(port)]
        demo_env = {**self.child_env(), **self.demo_auth_env()}
        self.demo = Child("demo", cmd, env=demo_env, log_path=self.log("demo"), masker=self.masker)
        url = f"http://127.0.0.1:{port}"
        if self.settings.auth["mode"] == "oauth2" and not self.settings.auth.get("token_url"):
            self.settings.auth["token_url"] = f"{url}/oauth/token"

        def healthy() -> bool:
            if not self.demo or not self.demo.alive():
                return True  # stop waiting; checked below
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_until(healthy, timeout=30)
        if not self.demo.alive():
            raise RunError("demo platform failed to start:\n" + "\n".join(self.demo.tail[-10:]))
        self.host = url
        with urllib.request.urlopen(f"{url}/api/status", timeout=5) as resp:
            status = json.load(resp)
        say(
            f"demo platform: {url} (store: {status['store']} — {status.get('store_reason', '')}; logs/demo.log)"
        )
        if status["store"] == "backend" and os.environ.get("LOADSTACK_DEMO_CONSUMER", "1") != "0":
            cmd = [sys.executable, "-m", "loadstack", "demo", "consumer"]
            self.consumer = Child(
                "consumer", cmd, env=self.child_env(), log_path=self.log("consumer"), masker=self.masker
            )
            say("demo pipeline consumer started (logs/consumer.log)")

    def log(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    def master_cmd(self) -> list[str]:
        s = self.settings
        cmd = [sys.executable, "-m", "locust", "-f", self.locustfiles(), "--master"]
        cmd += ["--master-bind-host", self.request.bind, "--master-bind-port", str(self.master_port)]
        cmd += ["--expect-workers", str(s.workers), "--expect-workers-max-wait", "90"]
        cmd += [
            "--csv",
            str(self.run_dir / "results"),
            "--csv-full-history",
            "--html",
            str(self.run_dir / "report.html"),
        ]
        cmd += ["--host", str(self.host), "-u", str(s.users), "-r", str(s.spawn_rate)]
        if self.request.web_ui:
            cmd += ["--web-host", self.request.bind, "--web-port", str(self.request.web_port)]
        else:
            cmd += ["--headless", "--only-summary"]
            if not s.shaped:
                cmd += ["-t", f"{max(1, round(s.run_time))}s"]
        if s.tags:
            cmd += ["--tags", *s.tags]
        if s.exclude_tags:
            cmd += ["--exclude-tags", *s.exclude_tags]
        return cmd + self.user_class_args()

    def worker_cmd(self) -> list[str]:
        cmd = [sys.executable, "-m", "locust", "-f", self.locustfiles(), "--worker"]
        return [*cmd, "--master-host", self.request.master_host, "--master-port", str(self.master_port)]

    @property
    def metrics_url(self) -> str | None:
        env = self.child_env()
        if env.get("LOCUST_METRICS_EXPORT") != "1":
            return None
        return f"http://{env.get('LOADSTACK_METRICS_BIND', '127.0.0.1')}:{env.get('LOADSTACK_METRICS_PORT', '9646')}/metrics"

    def start_locust(self, tied_to_parent: bool = True) -> None:
        env = self.child_env()
        self.master = Child(
            "master",
            self.master_cmd(),
            env=env,
            log_path=self.log("master"),
            masker=self.masker,
            on_line=self._relay,
            tied_to_parent=tied_to_parent,
        )
        for i in range(1, 0 if self.request.external_workers else self.settings.workers + 1):
            self.workers.append(
                Child(
                    f"worker-{i}",
                    self.worker_cmd(),
                    env=env,
                    log_path=self.log(f"worker-{i}"),
                    masker=self.masker,
                    tied_to_parent=tied_to_parent,
                )
            )
        if self.request.web_ui:
            self.web_url = f"http://127.0.0.1:{self.request.web_port}"

    def _relay(self, raw: str, masked: str) -> None:
        """Echo what a user watching the run needs: progress, warnings, errors (always the masked text)."""
        marker = "/loadstack.progress: "
        if marker in raw:
            say("  " + (masked.split(marker, 1)[1] if marker in masked else masked.split(": ", 1)[-1]))
        elif any(f"/{lvl}/" in raw for lvl in ("WARNING", "ERROR", "CRITICAL")):
            say("  " + masked.split("] ", 1)[-1])

    # -- stop ------------------------------------------------------------------
    def stop(self) -> None:
        """Master first (SIGINT: Locust writes its CSV/HTML and our summary), then workers, then demo."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self.master is not None:
            self.master.stop(first=signal.SIGINT, grace=30, then=signal.SIGTERM)
        for w in self.workers:
            w.stop(first=signal.SIGTERM, grace=10)
        self.stop_platform()

    def stop_platform(self) -> None:
        for child in (self.consumer, self.demo):
            if child is not None:
                child.stop(first=signal.SIGTERM, grace=10)

    def children(self) -> list[Child]:
        return [c for c in (self.demo, self.consumer, self.master, *self.workers) if c is not None]


def prepare(request: RunRequest) -> tuple[profiles.RunSettings, str, Path]:
    """Resolve settings and check every input; raises before any process starts."""
    try:
        settings = profiles.resolve(
            request.profile,
            users=request.users,
            spawn_rate=request.spawn_rate,
            run_time=request.run_time,
            host=request.host,
            workers=request.workers,
            auth_mode=request.auth_mode,
        )
    except ConfigError as exc:
        raise RunError(str(exc), EXIT_BAD_INPUT) from None
    allow_remote = request.allow_remote or os.environ.get("LOADSTACK_ALLOW_REMOTE") == "1"
    if allow_remote:
        settings.env["LOADSTACK_ALLOW_REMOTE"] = "1"
    try:
        if settings.host:
            safety.check_target(settings.host, allow_remote=allow_remote, what="host")
        env = {**os.environ, **settings.env}
        for name, what in BACKEND_URLS.items():
            if env.get(name):
                safety.check_target(env[name], allow_remote=allow_remote, what=f"{what} ({name})")
        run_id = runcontext.check_run_id(request.run_id or runcontext.new_run_id())
    except ValueError as exc:
        raise RunError(str(exc), EXIT_BAD_INPUT) from None
    root = Path(request.results_dir) if request.results_dir else paths.results_root()
    return settings, run_id, root / run_id


def write_metadata(stack: Stack, argv: list[str]) -> None:
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith(RECORDED_ENV_PREFIXES)}
    env = {k: v for k, v in env.items() if k not in ("LOADSTACK_RUN_SETTINGS",)}
    metadata: dict[str, Any] = {
        "run_id": stack.run_id,
        "profile": stack.settings.to_dict(),
        "command": shlex.join(argv),
        "cwd": os.getcwd(),
        "host": stack.host,
        "demo_platform": stack.demo is not None,
        "mode": "native",
        "web_ui": stack.request.web_ui,
        "started": results.iso(time.time()),
        "versions": results.versions(),
        "environment": stack.masker.mask_env(env),
    }
    results.write_json(stack.run_dir / "run-metadata.json", stack.masker.mask_obj(metadata))


EXIT_GATE_FAILED = 3
EXIT_REGRESSION = 4


def exit_code_for(summary: dict[str, Any]) -> int:
    """With SLO gates: 0 pass, 3 fail, 2 a gate that matches nothing.  Without: 1 if any request failed."""
    if summary.get("gates"):
        return {"pass": EXIT_OK, "fail": EXIT_GATE_FAILED, "error": EXIT_BAD_INPUT}[
            summary.get("verdict", "pass")
        ]
    return EXIT_FAILURES if summary["totals"]["failures"] else EXIT_OK


class _Signals:
    """Turn SIGINT/SIGTERM into one orderly stop of the stack (a second signal is ignored)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.received is None:
            self.received = signum
            say(f"\n{signal.Signals(signum).name}: stopping master, workers and demo platform …")
            threading.Thread(target=self.stack.stop, daemon=True).start()

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def run(request: RunRequest, argv: list[str] | None = None) -> int:
    """``loadstack run``: seed → headless run → teardown; returns the process exit status."""
    settings, run_id, run_dir = prepare(request)
    stack = Stack(request, settings, run_id, run_dir)
    stack.check_inputs()
    run_dir.mkdir(parents=True, exist_ok=True)  # only once every input is known to be good
    seed_only = request.scenario == "seed-only"
    say(
        f"run {run_id}: profile {settings.profile}, {settings.users} users, {settings.workers} workers, "
        + (
            f"shaped, up to {settings.planned_duration:.0f}s"
            if settings.shaped
            else f"{settings.run_time:.0f}s"
        )
        + (" (seed only)" if seed_only else "")
    )
    extra: dict[str, Any] = {}
    with _Signals(stack) as signals:
        try:
            if not stack.host:
                stack.start_demo()
            stack.check_auth()
            if settings.seed and not request.skip_seed and signals.received is None:
                extra["seed"] = stack.seed()
            if seed_only:
                return EXIT_OK
            write_metadata(stack, argv or sys.argv)
            if signals.received is None:
                stack.start_locust()
                if stack.metrics_url:
                    say(f"metrics: {stack.metrics_url}")
                assert stack.master is not None
                while stack.master.wait(0.5) is None:
                    if signals.received is not None:
                        break
                stack.master.wait()
        finally:
            stack.stop()
            if not request.skip_teardown and not seed_only:
                extra["teardown"] = stack.teardown()
    results.update_latest(run_dir.parent, run_id)
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        tail = "\n".join(stack.master.tail[-15:]) if stack.master else ""
        say(f"no summary was written; the master's last lines:\n{tail}")
        return EXIT_INTERRUPTED if signals.received else EXIT_FAILURES
    summary = results.read_json(summary_path)
    if extra:
        summary.update(extra)
        results.write_json(summary_path, summary)
    results.write_summary_csv(
        summary, run_dir / "summary.csv", dict(enumerate(g["target"] for g in settings.gates))
    )
    say("")
    results.print_table(summary)
    if summary.get("gates"):
        say("\n" + gates.format_table(summary["gates"]))
    if "aborted" in str(summary.get("end_reason", "")):
        say(f"run stopped early: {summary['end_reason']}")
    code = EXIT_INTERRUPTED if signals.received is not None else exit_code_for(summary)
    entry = history.append(
        run_dir.parent,
        summary,
        run_dir=run_dir,
        exit_code=code,
        verdict=history.verdict_of(summary, interrupted=signals.received is not None),
        sut_version=request.sut_version,
    )
    say(
        f"\nresults: {run_dir}/ (summary.json, summary.csv, report.html, results_*.csv)   verdict: {entry['verdict']}"
    )
    return code


# -- background web UI stack (loadstack ui / stop / status) -----------------------------------
def _state_file() -> Path:
    return paths.state_dir() / "ui.json"


def read_state() -> dict[str, Any] | None:
    try:
        return json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ui_foreground(request: RunRequest) -> int:
    """Supervise a web-UI stack until SIGTERM/SIGINT (what ``loadstack ui`` runs in the background)."""
    request.web_ui = True
    settings, run_id, run_dir = prepare(request)
    stack = Stack(request, settings, run_id, run_dir)
    stack.check_inputs()
    run_dir.mkdir(parents=True, exist_ok=True)
    if port_open("127.0.0.1", request.web_port):
        raise RunError(f"port {request.web_port} is in use; pass --web-port", EXIT_BAD_INPUT)
    state_path = _state_file()
    with _Signals(stack) as signals:
        try:
            if not stack.host:
                stack.start_demo()
            stack.check_auth()
            if settings.seed and not request.skip_seed:
                stack.seed()
            write_metadata(stack, sys.argv)
            stack.start_locust()
            wait_until(lambda: port_open("127.0.0.1", request.web_port), timeout=60)
            state = {
                "supervisor_pid": os.getpid(),
                "run_id": run_id,
                "run_dir": str(run_dir),
                "web_url": stack.web_url,
                "host": stack.host,
                "profile": settings.profile,
                "processes": {c.name: c.pid for c in stack.children()},
                "started": results.iso(time.time()),
            }
            results.write_json(state_path, state)
            while signals.received is None and stack.master is not None and stack.master.alive():
                time.sleep(0.5)
        finally:
            stack.stop()
            if not request.skip_teardown:
                stack.teardown()
            state_path.unlink(missing_ok=True)
    results.update_latest(run_dir.parent, run_id)
    return EXIT_OK


def worker_exec(request: RunRequest) -> None:
    """Become a Locust worker of this run (``loadstack worker``, the compose ``worker`` service)."""
    settings, run_id, run_dir = prepare(request)
    stack = Stack(request, settings, run_id, run_dir)
    say(
        f"worker of run {run_id} (profile {settings.profile}) -> master {request.master_host}:{stack.master_port}"
    )
    cmd = stack.worker_cmd()
    os.execvpe(cmd[0], cmd, stack.child_env())


def ui(request: RunRequest, extra_args: list[str]) -> int:
    """Start the web-UI stack in the background and return once the UI answers."""
    state = read_state()
    if state and pid_alive(state["supervisor_pid"]):
        say(f"already running: {state['web_url']} (loadstack stop to end it)")
        return EXIT_OK
    prepare(request)  # bad input is reported here, in the foreground
    log_path = paths.state_dir() / "ui-supervisor.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "loadstack", "ui", "--foreground", *extra_args]
    with open(log_path, "a") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    ok = wait_until(
        lambda: (read_state() or {}).get("supervisor_pid") == proc.pid or proc.poll() is not None, 120
    )
    state = read_state()
    if not ok or proc.poll() is not None or not state:
        say(f"the web UI stack did not come up; see {log_path}:")
        say("\n".join(Masker.from_env()(line) for line in log_path.read_text().splitlines()[-15:]))
        return EXIT_FAILURES
    say(f"Locust web UI: {state['web_url']}   (target: {state['host']})")
    say(f"results of this session: {state['run_dir']}/   stop with: just load-test stop")
    return EXIT_OK


def stop() -> int:
    state = read_state()
    if not state or not pid_alive(state["supervisor_pid"]):
        say("nothing running")
        _state_file().unlink(missing_ok=True)
        return EXIT_OK
    os.kill(state["supervisor_pid"], signal.SIGTERM)
    if not wait_until(lambda: not pid_alive(state["supervisor_pid"]), 90):
        for pid in [state["supervisor_pid"], *state["processes"].values()]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    say(f"stopped; results in {state['run_dir']}/")
    return EXIT_OK


def status() -> int:
    state = read_state()
    if not state or not pid_alive(state["supervisor_pid"]):
        say("nothing running")
        return EXIT_OK
    say(f"web UI stack (run {state['run_id']}, profile {state['profile']}) since {state['started']}")
    say(f"  web UI:  {state['web_url']}")
    say(f"  target:  {state['host']}")
    for name, pid in state["processes"].items():
        say(f"  {name:<10} pid {pid:<8} {'running' if pid_alive(pid) else 'exited'}")
    return EXIT_OK
