"""The ``loadstack`` command line.

Each subcommand is a thin adapter: it parses flags and calls the module that
owns the feature (lifecycle, profiles; report, inspect, importers, k8s and the demo
platform declare their own subcommands through ``register``).  Exit statuses:
0 ok, 1 failed requests, user-code exceptions or no request at all, 2 bad input,
3 SLO gate failed, 4 regression, 5 teardown left data, 6 master lost (incomplete
summary), 130 interrupted (docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from loadstack import __version__, configfile, exitcodes, k8s, lifecycle, limits, masking, profiles, settings
from loadstack.configfile import ConfigError
from loadstack.flags import MEGABYTES, PORT, SPAWN_RATE, USERS, WORKERS, duration_flag, run_id_flag, url_flag
from loadstack.importers import commands as import_commands
from loadstack.inspect import commands as inspect_commands
from loadstack.launchers.base import RunError, RunRequest, say
from loadstack.report import commands as report_commands
from loadstack_demo import commands as demo_commands

Handler = Callable[[argparse.Namespace], int]


def _input_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-input-mb",
        type=MEGABYTES,
        metavar="MB",
        help="size cap of profile, chain and SLO files (default $LOADSTACK_MAX_INPUT_MB or 5)",
    )


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile", default="smoke", help="profile name (profiles/NAME.yml) or path (default: smoke)"
    )
    p.add_argument(
        "--workers", type=WORKERS, help="Locust worker processes (default: profile, else CPU count)"
    )
    p.add_argument(
        "--allow-many-workers",
        action="store_true",
        help=f"start more than {limits.WORKERS_PER_CPU} workers per CPU (default $LOADSTACK_ALLOW_MANY_WORKERS)",
    )
    p.add_argument(
        "--host", type=url_flag, help="system under test; default: start the built-in demo platform"
    )
    p.add_argument("--users", "-u", type=USERS, help="peak concurrent users (overrides the profile)")
    p.add_argument("--spawn-rate", "-r", type=SPAWN_RATE, help="users started per second")
    p.add_argument("--run-time", "-t", type=duration_flag, help="e.g. 30s, 5m, 1h30m")
    _input_flags(p)
    p.add_argument("--run-id", type=run_id_flag, help="name this run (default: timestamp + random suffix)")
    p.add_argument("--results-dir", help="where results/<run_id>/ goes (default: ./results)")
    p.add_argument("--allow-remote", action="store_true", help="permit targets that are not local")
    p.add_argument(
        "--no-metrics", action="store_true", help="no Prometheus exporter (default: /metrics on :9646)"
    )
    p.add_argument(
        "--sut-version", help="version/commit of the system under test, recorded in results/history.jsonl"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--docker", dest="mode", action="store_const", const="docker", help="run on the compose stack"
    )
    mode.add_argument(
        "--native", dest="mode", action="store_const", const="native", help="run as local processes"
    )
    p.add_argument(
        "--offline",
        action="store_true",
        help="--docker with locally built images (docker-compose.offline.yml)",
    )
    p.add_argument(
        "--auth-mode",
        choices=["none", "oauth2", "local"],
        help="Authorization for HTTP/WS users (default: $AUTH_MODE, else the profile's auth:, else none)",
    )
    p.add_argument("--skip-seed", action="store_true", help="do not create the profile's seed data first")
    p.add_argument("--skip-teardown", action="store_true", help="keep the data this run created")
    p.add_argument(
        "--scenario",
        choices=["run", "seed-only"],
        default="run",
        help="seed-only: create the seed data for --run-id and stop (no load, no teardown)",
    )


def _request(args: argparse.Namespace) -> RunRequest:
    return RunRequest(
        profile=args.profile,
        users=args.users,
        spawn_rate=args.spawn_rate,
        run_time=args.run_time,
        host=args.host,
        workers=args.workers,
        allow_many_workers=args.allow_many_workers,
        run_id=args.run_id,
        results_dir=args.results_dir,
        allow_remote=args.allow_remote,
        web_port=getattr(args, "web_port", None) or settings.current().web_port,
        skip_seed=args.skip_seed,
        metrics=not args.no_metrics,
        sut_version=args.sut_version,
        skip_teardown=args.skip_teardown,
        scenario=args.scenario,
        auth_mode=args.auth_mode,
        mode=args.mode,
        offline=args.offline,
        down=getattr(args, "down", False),
    )


def cmd_run(args: argparse.Namespace) -> int:
    return lifecycle.run(_request(args))


def cmd_ui(args: argparse.Namespace) -> int:
    from loadstack import background

    request = _request(args)
    if args.foreground:
        return background.foreground(request)
    mode, why = lifecycle.choose_mode(lifecycle.prepare(request))
    if mode == "docker":
        say(f"mode: docker ({why})")
        return background.compose_ui(request)
    from loadstack import stopping

    # The subcommand's own arguments (a global --allow-proxy reaches the child as LOADSTACK_ALLOW_PROXY).
    forwarded = [a for a in stopping.command_line(sys.argv)[1:] if a != "--foreground"]
    return background.start(_request(args), forwarded)


def _role_run(args: argparse.Namespace) -> profiles.RunSettings:
    """The run of a container/pod role: flags, else the environment (LOADSTACK_PROFILE, ...)."""
    return profiles.resolve(
        args.profile or settings.current().profile or "platform",
        users=getattr(args, "users", None),
        spawn_rate=getattr(args, "spawn_rate", None),
        run_time=getattr(args, "run_time", None),
        host=getattr(args, "host", None),
        allow_remote=getattr(args, "allow_remote", False),
    )


def cmd_master(args: argparse.Namespace) -> int:
    """Become the Locust master of a run (compose ``master`` service, a Kubernetes Job)."""
    from loadstack import paths, runcontext
    from loadstack.launchers import locust

    run = _role_run(args)
    run_id = runcontext.check_run_id(args.run_id or settings.current().run_id or runcontext.new_run_id())
    headless = args.headless or settings.current().container_mode == "headless"
    argv = locust.master_argv(
        run,
        headless=headless,
        expect_workers=args.expect_workers or run.workers,
        bind_host=args.bind,
        bind_port=args.master_port,
        web_host=args.bind,
        web_port=args.web_port,
    )
    results_root = Path(args.results_dir) if args.results_dir else paths.results_root()
    env = locust.environment(
        run,
        run_id,
        results_root,
        launcher="loadstack master",
        metrics=settings.current().metrics_by_default(),
    )
    os.execvpe(argv[0], argv, env)
    return exitcodes.OK  # not reached: this process became the Locust master


def cmd_worker(args: argparse.Namespace) -> int:
    """Become a Locust worker (compose ``worker`` service, a Kubernetes Deployment); it joins the master's run."""
    from loadstack.launchers import locust

    run = _role_run(args)
    argv = locust.worker_argv(run, master_host=args.master_host, master_port=args.master_port)
    config = settings.current()
    # Workers count what the master's exporter serves.
    env = {
        "PYTHONUNBUFFERED": "1",
        **settings.environment_of({"metrics_export": config.metrics_by_default()}),
    }
    os.execvpe(argv[0], argv, config.child_environment(env))
    return exitcodes.OK  # not reached: this process became the Locust worker


def cmd_check(_: argparse.Namespace) -> int:
    """The master's input checks on the run in this environment, without starting anything."""
    import warnings

    warnings.filterwarnings("ignore", message="Monkey-patching ssl")
    from locust.util.load_locustfile import load_locustfile

    from loadstack import checks, runcontext

    run = runcontext.current().settings
    available: list[str] = []
    classes: list[type] = []
    if run.locustfile:
        try:
            found_classes = load_locustfile(run.locustfile)[0]
            available, classes = sorted(found_classes), list(found_classes.values())
        except Exception as exc:  # whatever the user's file raises on import is reported, not re-raised
            print(
                f"{run.locustfile}: the locustfile failed to load: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            return exitcodes.BAD_INPUT
    found = checks.problems(run, settings.current(), available, run.host, classes)
    for problem in found:
        print(masking.current()(problem), file=sys.stderr)
    return exitcodes.BAD_INPUT if found else exitcodes.OK


def cmd_stop(_: argparse.Namespace) -> int:
    """Stop this checkout's UI session and only what it started (never a compose stack it did not)."""
    from loadstack import background

    return background.stop()


def cmd_status(_: argparse.Namespace) -> int:
    from loadstack import background
    from loadstack.launchers import compose

    code = background.status()
    if compose.running():
        print("compose stack:")
        compose.stack("ps")
    return code


def cmd_stack(args: argparse.Namespace) -> int:
    from loadstack.launchers import compose

    allowed = args.allow_many_workers or settings.current().allow_many_workers
    refused = args.workers and limits.too_many_workers(args.workers, allowed)
    if refused:
        print(f"loadstack stack: --workers: {refused}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    return compose.stack(args.action, offline=args.offline, workers=args.workers, follow=args.follow)


def cmd_profile_validate(args: argparse.Namespace) -> int:
    bad = 0
    for path in args.files:
        try:
            profiles.load_profile(path)
        except ConfigError as exc:
            bad += 1
            print(exc, file=sys.stderr)
        else:
            print(f"{path}: ok")
    return exitcodes.BAD_INPUT if bad else exitcodes.OK


def cmd_profile_show(args: argparse.Namespace) -> int:
    run = profiles.resolve(args.name)
    data = run.to_dict()
    data["env"] = masking.current().mask_env(data["env"])
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")
    return exitcodes.OK


def cmd_chain_validate(args: argparse.Namespace) -> int:
    import warnings

    # Validation builds step objects, which imports Locust (gevent-patches this short-lived
    # process after ssl was imported; harmless here, noisy otherwise).
    warnings.filterwarnings("ignore", message="Monkey-patching ssl")
    from loadstack.chains.loader import load_all

    try:
        chains = load_all([(f, 1.0) for f in args.files])
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return exitcodes.BAD_INPUT
    for chain in chains:
        print(f"{chain.source}: ok ({chain.name}, {len(chain.walk())} steps)")
    return exitcodes.OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    from loadstack.metrics import dashboard

    return dashboard.main(
        (["--check"] if args.check else []) + (["--output", args.output] if args.output else [])
    )


def cmd_auth_check(args: argparse.Namespace) -> int:
    from loadstack import checks
    from loadstack.auth import AuthConfigError, preflight

    try:
        run = profiles.resolve(
            args.profile, host=args.host, auth_mode=args.auth_mode, allow_remote=args.allow_remote
        )
        if not run.host:
            raise AuthConfigError("give --host (the service to show the token to)")
        refused = checks.aim(run, settings.current(), run.host)
        if refused:
            raise AuthConfigError(refused[0])
        print(preflight.check(run.auth.model_dump(), run.host, allow_remote=run.allow_remote))
    except (AuthConfigError, ValueError) as exc:
        print(f"loadstack auth check: {exc}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    return exitcodes.OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loadstack", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"loadstack {__version__}")
    parser.add_argument(
        "--allow-proxy",
        metavar="URL",
        help="send loadstack's own HTTP calls and WebSocket handshakes through this proxy (http://host:port; "
        "$LOADSTACK_ALLOW_PROXY); http_proxy/https_proxy/all_proxy are never used",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="headless run of a profile (master + workers)")
    _run_flags(p)
    p.add_argument(
        "--down", action="store_true", help="--docker: remove the whole stack (volumes too) afterwards"
    )
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser(
        "ui", help="start master + workers (+ demo platform) with Locust's web UI in the background"
    )
    _run_flags(p)
    p.add_argument("--web-port", type=PORT, help="default $LOADSTACK_WEB_PORT or 8089")
    p.add_argument("--foreground", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_ui)

    p = sub.add_parser(
        "master", help="container/pod role: the Locust master of a run (web UI, or --headless)"
    )
    p.add_argument("--profile", help="default $LOADSTACK_PROFILE or platform")
    p.add_argument("--headless", action="store_true", help="a headless run (default: $LOADSTACK_MODE)")
    p.add_argument("--expect-workers", type=WORKERS, help="default: the profile's workers")
    p.add_argument("--bind", default="0.0.0.0", help="address for workers and the web UI (default 0.0.0.0)")
    p.add_argument("--master-port", type=PORT, default=5557)
    p.add_argument("--web-port", type=PORT, default=8089)
    p.add_argument(
        "--run-id",
        type=run_id_flag,
        help="default $LOADSTACK_RUN_ID, else a new one (workers take the master's)",
    )
    p.add_argument("--results-dir", help="where results/<run_id>/ goes (default ./results)")
    p.add_argument(
        "--host", type=url_flag, help="system under test (default: the profile's host / LOCUST_HOST)"
    )
    p.add_argument("--allow-remote", action="store_true", help="permit a target that is not local")
    p.add_argument("--users", "-u", type=USERS)
    p.add_argument("--spawn-rate", "-r", type=SPAWN_RATE)
    p.add_argument("--run-time", "-t", type=duration_flag)
    _input_flags(p)
    p.set_defaults(handler=cmd_master)
    p = sub.add_parser("worker", help="container/pod role: a Locust worker; it joins the master's run")
    p.add_argument("--profile", help="default $LOADSTACK_PROFILE or platform (for the locustfile)")
    p.add_argument("--master-host", default="master", help="default: master (the compose service)")
    p.add_argument("--master-port", type=PORT, default=5557)
    _input_flags(p)
    p.set_defaults(handler=cmd_worker)
    p = sub.add_parser("check", help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_check)

    sub.add_parser("stop", help="stop the background web UI stack").set_defaults(handler=cmd_stop)
    p = sub.add_parser("stack", help="the compose stack: up | down | logs | ps")
    p.add_argument("action", choices=["up", "down", "logs", "ps"])
    p.add_argument("--offline", action="store_true", help="locally built images (docker-compose.offline.yml)")
    p.add_argument("--workers", type=WORKERS, help="up: number of worker containers")
    p.add_argument(
        "--allow-many-workers",
        action="store_true",
        help=f"up: more than {limits.WORKERS_PER_CPU} worker containers per CPU",
    )
    p.add_argument("--follow", "-f", action="store_true", help="logs: follow")
    p.set_defaults(handler=cmd_stack)
    sub.add_parser("status", help="what is running, with pids and ports").set_defaults(handler=cmd_status)

    prof = sub.add_parser("profile", help="validate or show load profiles").add_subparsers(
        dest="profile_command", required=True, metavar="ACTION"
    )
    p = prof.add_parser("validate", help="check profile files; exit 2 on the first bad one")
    p.add_argument("files", nargs="+")
    _input_flags(p)
    p.set_defaults(handler=cmd_profile_validate)
    p = prof.add_parser("show", help="the resolved settings of a profile, environment overrides applied")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    _input_flags(p)
    p.set_defaults(handler=cmd_profile_show)

    chain = sub.add_parser("chain", help="chain files").add_subparsers(
        dest="chain_command", required=True, metavar="ACTION"
    )
    p = chain.add_parser(
        "validate", help="check chain files (schema, templates, variables, gotos) without running them"
    )
    p.add_argument("files", nargs="+")
    _input_flags(p)
    p.set_defaults(handler=cmd_chain_validate)

    import_commands.register(sub)
    inspect_commands.register(sub)
    report_commands.register(sub)

    authp = sub.add_parser("auth", help="auth modes").add_subparsers(
        dest="auth_command", required=True, metavar="ACTION"
    )
    p = authp.add_parser("check", help="get a token for the auth mode and show it to --host once")
    p.add_argument("--host", type=url_flag)
    p.add_argument("--profile", default="smoke", help="profile whose auth: block applies (default smoke)")
    p.add_argument("--auth-mode", choices=["none", "oauth2", "local"])
    p.add_argument("--allow-remote", action="store_true")
    _input_flags(p)
    p.set_defaults(handler=cmd_auth_check)

    p = sub.add_parser("dashboard", help="regenerate (or --check) infra/grafana/dashboards/load-testing.json")
    p.add_argument("--check", action="store_true", help="exit 1 if the committed JSON is stale")
    p.add_argument("--output", help="write here instead")
    p.set_defaults(handler=cmd_dashboard)

    demo_commands.register(sub)
    k8s.register(sub)
    return parser


def _proxy_choice(allow_proxy: str | None) -> int | None:
    """Apply ``--allow-proxy``; say once that the environment's proxies are not used. Exit 2 on a bad URL."""
    try:
        config = settings.set_allow_proxy(allow_proxy) if allow_proxy else settings.current()
    except ConfigError as exc:
        if not allow_proxy:
            return None  # another variable is bad: the command reports it as it always has
        print(f"loadstack: --allow-proxy: {exc}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    ignored = config.environment_proxies()
    if ignored and not config.allow_proxy:
        print(
            f"loadstack: not using {', '.join(ignored)} from the environment: loadstack connects directly "
            "unless --allow-proxy URL (or LOADSTACK_ALLOW_PROXY) names a proxy",
            file=sys.stderr,
        )
    return None


def _flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Every argument's destination -> how the command line spells it (``--run-id``, ``RUN_ID``)."""
    names: dict[str, str] = {}
    stack = [parser]
    while stack:
        current = stack.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack += list(action.choices.values())
            elif action.option_strings:
                names.setdefault(action.dest, max(action.option_strings, key=len))
            elif action.dest != argparse.SUPPRESS:
                names.setdefault(action.dest, str(action.metavar or action.dest))
    return names


def _control_characters(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str | None:
    """The first argument whose text has a control character, named; None when there is none.

    No command takes a newline, NUL or escape sequence in a value: such a value would become part of
    a file or folder name, a YAML manifest, a header or a log line.  One check here covers every
    flag and positional argument of every command, whatever type its own parser gives it.
    """
    names: dict[str, str] | None = None
    for dest, value in vars(args).items():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and any(ord(c) < 32 or ord(c) == 127 for c in text):
                names = names or _flag_names(parser)
                return f"{names.get(dest, dest)}: {text[:80]!r} has a control character"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    masking.mask_standard_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    bad = _control_characters(args, parser)
    if bad:
        print(f"loadstack {args.command}: {bad}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    handler: Handler = args.handler
    proxies = _proxy_choice(args.allow_proxy)
    if proxies is not None:
        return proxies
    if getattr(args, "max_input_mb", None) is not None and args.command != "import":
        configfile.set_max_input_mb(args.max_input_mb)
    try:
        return handler(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return exitcodes.BAD_INPUT
    except OSError as exc:  # a file or folder named on the command line that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"loadstack {args.command}: {where}{exc.strerror or exc}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    except RunError as exc:
        print(f"loadstack: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
