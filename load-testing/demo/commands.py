"""``loadstack demo serve|consumer``: the demo platform's processes from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from loadstack import exitcodes
from loadstack.flags import PORT, float_in


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
    p.set_defaults(handler=cmd_demo_serve)
    p = demo.add_parser("consumer", help="the pipeline consumer: order.created events -> Redis order:{id}")
    p.set_defaults(handler=cmd_demo_consumer)
