"""``loadstack demo serve|consumer``: the demo platform's processes from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from loadstack import exitcodes
from loadstack.flags import PORT, float_in


def cmd_demo_serve(args: argparse.Namespace) -> int:
    from loadstack.settings import parse_stall
    from loadstack_demo.faults import parse_slow
    from loadstack_demo.server import serve

    try:
        for spec in args.slow or []:
            parse_slow(spec)
    except ValueError as exc:
        print(f"loadstack demo serve: --slow: {exc}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    try:
        if args.stall is not None:
            parse_stall(args.stall)
    except ValueError as exc:
        print(f"loadstack demo serve: --stall: {exc}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    serve(
        args.host,
        args.port,
        store=args.store,
        latency_ms=args.latency_ms,
        slow=args.slow,
        stall=args.stall,
        otlp_endpoint=args.otlp_endpoint,
    )
    return exitcodes.OK


def cmd_demo_consumer(args: argparse.Namespace) -> int:
    from loadstack import safety
    from loadstack_demo.server import check_backends, consume

    try:  # the same target rule as `demo serve` and the load generators
        check_backends(postgres=False)
    except safety.RemoteTargetError as exc:
        print(f"loadstack demo consumer: {exc}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    consume(args.otlp_endpoint)
    return exitcodes.OK


def _otlp_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="export the platform's spans over OTLP/HTTP to this base URL, e.g. http://127.0.0.1:4318 "
        "($LOADSTACK_DEMO_OTLP_ENDPOINT, else $OTEL_EXPORTER_OTLP_ENDPOINT; unset: no spans)",
    )


def register(sub: Any) -> None:
    """Add ``loadstack demo`` to the CLI."""
    demo = sub.add_parser("demo", help="the built-in demo platform").add_subparsers(
        dest="demo_command", required=True, metavar="ACTION"
    )
    p = demo.add_parser("serve", help="serve the demo platform's HTTP/WebSocket API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=PORT, default=8000)
    p.add_argument(
        "--store",
        choices=["auto", "memory", "backend"],
        help="auto (default, $LOADSTACK_DEMO_STORE): PostgreSQL+RabbitMQ+Redis when reachable, else memory",
    )
    p.add_argument(
        "--latency-ms",
        type=float_in(0, 600_000),
        help="add this latency to every request ($LOADSTACK_DEMO_LATENCY_MS)",
    )
    p.add_argument(
        "--slow",
        action="append",
        metavar="GLOB=MS",
        help="add latency to matching paths ($LOADSTACK_DEMO_SLOW, ';'-separated)",
    )
    p.add_argument(
        "--stall",
        metavar="AT_S:DURATION_S",
        help="stop answering for DURATION_S once, AT_S after the first request other than /health"
        " ($LOADSTACK_DEMO_STALL)",
    )
    _otlp_flag(p)
    p.set_defaults(handler=cmd_demo_serve)
    p = demo.add_parser("consumer", help="the pipeline consumer: order.created events -> Redis order:{id}")
    _otlp_flag(p)
    p.set_defaults(handler=cmd_demo_consumer)
