"""``loadstack inspect rabbitmq|redis``: the command-line side of the inspectors.

Arguments that no server would accept (a queue name over AMQP's 255 bytes, an
unknown stream offset) are refused before anything connects.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from loadstack import exitcodes
from loadstack.flags import int_in

# AMQP's queue names are short strings: at most 255 bytes.
AMQP_NAME_BYTES = 255
STREAM_OFFSETS = ("first", "last", "next")


def _inspect_rabbitmq_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, before anything connects."""
    size = len(args.queue.encode("utf-8", "surrogateescape"))
    if size > AMQP_NAME_BYTES:
        return f"queue: {size} bytes; AMQP queue names are at most {AMQP_NAME_BYTES} bytes"
    if args.offset not in STREAM_OFFSETS and not (args.offset.isdigit() and int(args.offset) < 2**63):
        return f"--offset: {args.offset[:40]!r} is not first, last, next or a stream offset (0 to 2**63-1)"
    return None


def cmd_inspect_rabbitmq(args: argparse.Namespace) -> int:
    from loadstack.inspect.rabbitmq import InspectError, QueueInspector, format_messages

    problem = _inspect_rabbitmq_problem(args)
    if problem:
        print(f"loadstack inspect rabbitmq: {problem}", file=sys.stderr)
        return exitcodes.BAD_INPUT
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
        inspector = RedisInspector(args.url, allow_remote=args.allow_remote, allow_touch=args.allow_touch)
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


def register(sub: Any) -> None:
    """Add ``loadstack inspect`` to the CLI."""
    insp = sub.add_parser("inspect", help="look at queues and caches without changing them").add_subparsers(
        dest="inspect_command", required=True, metavar="TARGET"
    )
    p = insp.add_parser("rabbitmq", help="peek at messages of a queue; they stay in the queue, in order")
    p.add_argument("queue")
    p.add_argument("--count", "-n", type=int_in(1, 10_000), default=10, help="messages to show (default 10)")
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
    p.add_argument(
        "--limit", type=int_in(1, 1_000_000), default=100, help="at most this many keys (default 100)"
    )
    p.add_argument("--url", help="Redis URL (default $LOADSTACK_REDIS_URL or redis://127.0.0.1:6379/0)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--allow-remote", action="store_true")
    p.add_argument(
        "--allow-touch",
        action="store_true",
        help="Redis < 7.2 (no CLIENT NO-TOUCH): preview values although that resets their idle time/LFU counter",
    )
    p.set_defaults(handler=cmd_inspect_redis)
