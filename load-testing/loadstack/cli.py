"""The ``loadstack`` command line.

Each subcommand is a thin adapter: it parses flags and calls the module that
owns the feature (runner, profiles, demo platform, ...).  Exit statuses:
0 ok, 1 failed requests, 2 bad input, 3 SLO gate failed, 4 regression,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from loadstack import __version__, exitcodes, k8s, lifecycle, profiles, settings
from loadstack.configfile import ConfigError
from loadstack.importers import commands as import_commands
from loadstack.masking import Masker

Handler = Callable[[argparse.Namespace], int]


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile", default="smoke", help="profile name (profiles/NAME.yml) or path (default: smoke)"
    )
    p.add_argument("--workers", type=int, help="Locust worker processes (default: profile, else CPU count)")
    p.add_argument("--host", help="system under test; default: start the built-in demo platform")
    p.add_argument("--users", "-u", type=int, help="peak concurrent users (overrides the profile)")
    p.add_argument("--spawn-rate", "-r", type=float, help="users started per second")
    p.add_argument("--run-time", "-t", help="e.g. 30s, 5m, 1h30m")
    p.add_argument("--run-id", help="name this run (default: timestamp + random suffix)")
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


def _request(args: argparse.Namespace) -> lifecycle.RunRequest:
    return lifecycle.RunRequest(
        profile=args.profile,
        users=args.users,
        spawn_rate=args.spawn_rate,
        run_time=args.run_time,
        host=args.host,
        workers=args.workers,
        run_id=args.run_id,
        results_dir=args.results_dir,
        allow_remote=args.allow_remote,
        web_port=getattr(args, "web_port", 8089),
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
    from loadstack.launchers import compose

    if args.foreground:
        return background.foreground(_request(args))
    if args.mode == "docker" or (args.mode is None and compose.auto_mode()[0] == "docker"):
        return compose.ui(_request(args))
    forwarded = [a for a in sys.argv[2:] if a != "--foreground"]
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
    env = locust.environment(run, run_id, results_root, launcher="loadstack master")
    os.execvpe(argv[0], argv, env)
    return exitcodes.OK  # not reached: this process became the Locust master


def cmd_worker(args: argparse.Namespace) -> int:
    """Become a Locust worker (compose ``worker`` service, a Kubernetes Deployment); it joins the master's run."""
    from loadstack.launchers import locust

    run = _role_run(args)
    argv = locust.worker_argv(run, master_host=args.master_host, master_port=args.master_port)
    os.execvpe(argv[0], argv, settings.current().child_environment({"PYTHONUNBUFFERED": "1"}))
    return exitcodes.OK  # not reached: this process became the Locust worker


def cmd_check(_: argparse.Namespace) -> int:
    """The master's input checks on the run in this environment, without starting anything."""
    import warnings

    warnings.filterwarnings("ignore", message="Monkey-patching ssl")
    from locust.util.load_locustfile import load_locustfile

    from loadstack import checks, runcontext

    run = runcontext.current().settings
    available: list[str] = []
    if run.locustfile:
        try:
            available = sorted(load_locustfile(run.locustfile)[0])
        except Exception as exc:  # whatever the user's file raises on import is reported, not re-raised
            print(
                f"{run.locustfile}: the locustfile failed to load: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            return exitcodes.BAD_INPUT
    found = checks.problems(run, settings.current(), available, run.host)
    for problem in found:
        print(Masker.from_env()(problem), file=sys.stderr)
    return exitcodes.BAD_INPUT if found else exitcodes.OK


def cmd_stop(_: argparse.Namespace) -> int:
    from loadstack import background
    from loadstack.launchers import compose

    code = background.stop()
    if compose.running():
        print("stopping the compose stack (volumes are kept; `just stack down` removes them) …")
        compose.Compose(offline=compose.offline_wanted()).run("down", "--remove-orphans")
    return code


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
    settings = profiles.resolve(args.name)
    data = settings.to_dict()
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


def _summaries_dir(args: argparse.Namespace) -> Path:
    from loadstack import paths

    return Path(args.results_dir) if args.results_dir else paths.results_root()


def _load_summary(root: Path, run_id: str) -> dict | None:
    from loadstack import results

    path = results.run_dir(root, run_id) / "summary.json"
    return results.read_json(path) if path.exists() else None


def cmd_report(args: argparse.Namespace) -> int:
    from loadstack import results
    from loadstack.report import history
    from loadstack.report.html import runs_report
    from loadstack.report.locate import describe_run, grafana_url

    root = _summaries_dir(args)
    entries = history.load(root)
    if args.run_ids:
        run_ids = args.run_ids
    else:
        run_ids = [e["run_id"] for e in entries if (root / e["run_id"] / "summary.json").exists()][
            -args.last :
        ]
        run_ids = list(dict.fromkeys(run_ids)) or ["latest"]
    summaries = [(r, _load_summary(root, r)) for r in run_ids]
    missing = [r for r, s in summaries if s is None]
    if missing:
        print(f"loadstack report: no results for {', '.join(missing)} under {root}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    incomplete = [r for r, s in summaries if s is not None and not {"run_id", "totals"} <= s.keys()]
    if incomplete:
        print(
            f"loadstack report: {', '.join(incomplete)}: summary.json has no run_id/totals "
            "(not written by a finished loadstack run); leave it out or rerun",
            file=sys.stderr,
        )
        return exitcodes.BAD_INPUT
    docs = [s for _, s in summaries if s is not None]
    out = Path(args.output) if args.output else root / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(runs_report(docs, {e["run_id"]: e for e in entries}), encoding="utf-8")
    print(f"combined report ({len(docs)} runs): {out}")
    print("\n".join(describe_run(results.run_dir(root, docs[-1]["run_id"]))))
    print(f"Grafana dashboard (compose stack): {grafana_url(docs[-1]['run_id'])}")
    return exitcodes.OK


def cmd_compare(args: argparse.Namespace) -> int:
    from loadstack import results
    from loadstack.report import history
    from loadstack.report.compare import Settings, compare, format_table
    from loadstack.report.html import comparison_page

    root = _summaries_dir(args)
    current = _load_summary(root, args.run_id)
    if current is None:
        print(f"loadstack compare: no results for {args.run_id} under {root}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    baseline_id = args.baseline
    if baseline_id == "latest-passing":
        passing = [
            e for e in history.load(root) if e["verdict"] == "pass" and e["run_id"] != current["run_id"]
        ]
        same = [e for e in passing if e["profile"] == current["profile"]]
        chosen = (same or passing)[-1:]
        if not chosen:
            print(
                f"loadstack compare: no passing run in {root / 'history.jsonl'} to compare with; pass --baseline RUN_ID",
                file=sys.stderr,
            )
            return exitcodes.BAD_INPUT
        baseline_id = chosen[0]["run_id"]
    baseline = _load_summary(root, baseline_id)
    if baseline is None:
        print(f"loadstack compare: no results for baseline {baseline_id} under {root}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    settings = Settings(
        p95_tolerance=args.p95_tolerance,
        p95_min_ms=args.p95_min_ms,
        error_tolerance_pp=args.error_tolerance_pp,
        alpha=args.alpha,
    )
    comparison = compare(baseline, current, settings)
    print(format_table(comparison))
    run_dir = results.run_dir(root, current["run_id"])
    stem = run_dir / f"compare-{baseline['run_id']}"
    results.write_json(stem.with_suffix(".json"), comparison.as_dict())
    stem.with_suffix(".html").write_text(comparison_page(comparison, baseline, current), encoding="utf-8")
    print(f"\ncomparison: {stem.with_suffix('.html')} (and .json)")
    return exitcodes.REGRESSION if comparison.regressions else exitcodes.OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    from loadstack.metrics import dashboard

    return dashboard.main(
        (["--check"] if args.check else []) + (["--output", args.output] if args.output else [])
    )


def cmd_demo_serve(args: argparse.Namespace) -> int:
    from loadstack_demo.faults import parse_slow
    from loadstack_demo.server import serve

    try:
        for spec in args.slow or []:
            parse_slow(spec)
    except ValueError as exc:
        print(f"loadstack demo serve: --slow: {exc}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    serve(args.host, args.port, store=args.store, latency_ms=args.latency_ms, slow=args.slow)
    return exitcodes.OK


def cmd_demo_consumer(_: argparse.Namespace) -> int:
    from loadstack_demo.server import consume

    consume()
    return exitcodes.OK


def cmd_inspect_rabbitmq(args: argparse.Namespace) -> int:
    from loadstack.inspect.rabbitmq import InspectError, QueueInspector, format_messages

    try:
        with QueueInspector(
            args.url,
            queue_type=args.queue_type,
            allow_delivery_count=args.allow_delivery_count,
            allow_remote=args.allow_remote,
        ) as inspector:
            offset: str | int = int(args.offset) if args.offset.isdigit() else args.offset
            messages = inspector.peek(args.queue, args.count, offset=offset)
            info = inspector.info(args.queue)
    except InspectError as exc:
        print(f"loadstack inspect rabbitmq: {exc}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    if args.json:
        print(
            json.dumps(
                {"queue": vars(info), "messages": [m.to_json() for m in messages]}, indent=2, default=str
            )
        )
    else:
        print(format_messages(info, messages))
    return exitcodes.OK


def cmd_inspect_redis(args: argparse.Namespace) -> int:
    from loadstack.inspect.redis import InspectError, RedisInspector, format_reports

    try:
        inspector = RedisInspector(args.url, allow_remote=args.allow_remote)
        reports = inspector.scan(args.pattern, limit=args.limit)
        inspector.close()
    except InspectError as exc:
        print(f"loadstack inspect redis: {exc}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    if args.json:
        print(json.dumps([r.to_json() for r in reports], indent=2, default=str))
    else:
        print(format_reports(reports))
    return exitcodes.OK


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


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loadstack", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"loadstack {__version__}")
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
    p.add_argument("--web-port", type=int, default=8089)
    p.add_argument("--foreground", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_ui)

    p = sub.add_parser(
        "master", help="container/pod role: the Locust master of a run (web UI, or --headless)"
    )
    p.add_argument("--profile", help="default $LOADSTACK_PROFILE or platform")
    p.add_argument("--headless", action="store_true", help="a headless run (default: $LOADSTACK_MODE)")
    p.add_argument("--expect-workers", type=_positive_int, help="default: the profile's workers")
    p.add_argument("--bind", default="0.0.0.0", help="address for workers and the web UI (default 0.0.0.0)")
    p.add_argument("--master-port", type=int, default=5557)
    p.add_argument("--web-port", type=int, default=8089)
    p.add_argument("--run-id", help="default $LOADSTACK_RUN_ID, else a new one (workers take the master's)")
    p.add_argument("--results-dir", help="where results/<run_id>/ goes (default ./results)")
    p.add_argument("--host", help="system under test (default: the profile's host / LOCUST_HOST)")
    p.add_argument("--allow-remote", action="store_true", help="permit a target that is not local")
    p.add_argument("--users", "-u", type=int)
    p.add_argument("--spawn-rate", "-r", type=float)
    p.add_argument("--run-time", "-t")
    p.set_defaults(handler=cmd_master)
    p = sub.add_parser("worker", help="container/pod role: a Locust worker; it joins the master's run")
    p.add_argument("--profile", help="default $LOADSTACK_PROFILE or platform (for the locustfile)")
    p.add_argument("--master-host", default="master", help="default: master (the compose service)")
    p.add_argument("--master-port", type=int, default=5557)
    p.set_defaults(handler=cmd_worker)
    p = sub.add_parser("check", help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_check)

    sub.add_parser("stop", help="stop the background web UI stack").set_defaults(handler=cmd_stop)
    p = sub.add_parser("stack", help="the compose stack: up | down | logs | ps")
    p.add_argument("action", choices=["up", "down", "logs", "ps"])
    p.add_argument("--offline", action="store_true", help="locally built images (docker-compose.offline.yml)")
    p.add_argument("--workers", type=_positive_int, help="up: number of worker containers")
    p.add_argument("--follow", "-f", action="store_true", help="logs: follow")
    p.set_defaults(handler=cmd_stack)
    sub.add_parser("status", help="what is running, with pids and ports").set_defaults(handler=cmd_status)

    prof = sub.add_parser("profile", help="validate or show load profiles").add_subparsers(
        dest="profile_command", required=True, metavar="ACTION"
    )
    p = prof.add_parser("validate", help="check profile files; exit 2 on the first bad one")
    p.add_argument("files", nargs="+")
    p.set_defaults(handler=cmd_profile_validate)
    p = prof.add_parser("show", help="the resolved settings of a profile, environment overrides applied")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_profile_show)

    insp = sub.add_parser("inspect", help="look at queues and caches without changing them").add_subparsers(
        dest="inspect_command", required=True, metavar="TARGET"
    )
    p = insp.add_parser("rabbitmq", help="peek at messages of a queue; they stay in the queue, in order")
    p.add_argument("queue")
    p.add_argument("--count", "-n", type=_positive_int, default=10, help="messages to show (default 10)")
    p.add_argument(
        "--url", help="AMQP URL (default $LOADSTACK_AMQP_URL or amqp://guest:guest@127.0.0.1:5672//)"
    )
    p.add_argument("--queue-type", choices=["classic", "quorum", "stream"], help="skip type detection")
    p.add_argument(
        "--allow-delivery-count",
        action="store_true",
        help="peek a quorum queue although each peek counts toward its delivery-limit",
    )
    p.add_argument(
        "--offset", default="first", help="stream queues: first | last | next | OFFSET (default first)"
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--allow-remote", action="store_true")
    p.set_defaults(handler=cmd_inspect_rabbitmq)
    p = insp.add_parser("redis", help="walk keys with SCAN: type, TTL, size, bounded preview (read-only)")
    p.add_argument("pattern", nargs="?", default="*")
    p.add_argument("--limit", type=_positive_int, default=100, help="at most this many keys (default 100)")
    p.add_argument("--url", help="Redis URL (default $LOADSTACK_REDIS_URL or redis://127.0.0.1:6379/0)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--allow-remote", action="store_true")
    p.set_defaults(handler=cmd_inspect_redis)

    chain = sub.add_parser("chain", help="chain files").add_subparsers(
        dest="chain_command", required=True, metavar="ACTION"
    )
    p = chain.add_parser(
        "validate", help="check chain files (schema, templates, variables, gotos) without running them"
    )
    p.add_argument("files", nargs="+")
    p.set_defaults(handler=cmd_chain_validate)

    import_commands.add_parsers(sub)

    authp = sub.add_parser("auth", help="auth modes").add_subparsers(
        dest="auth_command", required=True, metavar="ACTION"
    )
    p = authp.add_parser("check", help="get a token for the auth mode and show it to --host once")
    p.add_argument("--host")
    p.add_argument("--profile", default="smoke", help="profile whose auth: block applies (default smoke)")
    p.add_argument("--auth-mode", choices=["none", "oauth2", "local"])
    p.add_argument("--allow-remote", action="store_true")
    p.set_defaults(handler=cmd_auth_check)

    p = sub.add_parser("report", help="combined HTML report over runs; prints where everything is")
    p.add_argument(
        "run_ids", nargs="*", metavar="RUN_ID", help="default: the last --last runs of results/history.jsonl"
    )
    p.add_argument("--last", type=_positive_int, default=10)
    p.add_argument("--output", help="default: results/report.html")
    p.add_argument("--results-dir", help="default: ./results")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("compare", help="regression check of a run against a baseline (exit 4 on regression)")
    p.add_argument("run_id", nargs="?", default="latest", metavar="RUN_ID", help="default: latest")
    p.add_argument("--baseline", default="latest-passing", help="RUN_ID or latest-passing (default)")
    p.add_argument(
        "--p95-tolerance", type=float, default=0.10, help="relative p95 increase tolerated (default 0.10)"
    )
    p.add_argument(
        "--p95-min-ms", type=float, default=5.0, help="absolute p95 increase tolerated in ms (default 5)"
    )
    p.add_argument(
        "--error-tolerance-pp", type=float, default=1.0, help="error-rate increase tolerated, in points"
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--results-dir", help="default: ./results")
    p.set_defaults(handler=cmd_compare)

    p = sub.add_parser("dashboard", help="regenerate (or --check) infra/grafana/dashboards/load-testing.json")
    p.add_argument("--check", action="store_true", help="exit 1 if the committed JSON is stale")
    p.add_argument("--output", help="write here instead")
    p.set_defaults(handler=cmd_dashboard)

    demo = sub.add_parser("demo", help="the built-in demo platform").add_subparsers(
        dest="demo_command", required=True, metavar="ACTION"
    )
    p = demo.add_parser("serve", help="serve the demo platform's HTTP/WebSocket API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--store",
        choices=["auto", "memory", "backend"],
        help="auto (default, $LOADSTACK_DEMO_STORE): PostgreSQL+RabbitMQ+Redis when reachable, else memory",
    )
    p.add_argument(
        "--latency-ms", type=float, help="add this latency to every request ($LOADSTACK_DEMO_LATENCY_MS)"
    )
    p.add_argument(
        "--slow",
        action="append",
        metavar="GLOB=MS",
        help="add latency to matching paths ($LOADSTACK_DEMO_SLOW, ';'-separated)",
    )
    p.set_defaults(handler=cmd_demo_serve)
    p = demo.add_parser("consumer", help="the pipeline consumer: order.created events -> Redis order:{id}")
    p.set_defaults(handler=cmd_demo_consumer)
    k8s.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return exitcodes.BAD_INPUT
    except lifecycle.RunError as exc:
        print(f"loadstack: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
