"""``loadstack import har|openapi``: the command-line side of the importers.

:func:`register` declares the subcommands on the main parser; the handlers
read the input, build the scenario, write it and print the import summary on
stderr.  Bad input of any kind (unreadable, not UTF-8, not JSON, malformed
fields, absurd sizes) is exit status 2 with a message naming the file and the
field, never a traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def _step_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.-")[:64] or "imported"


def _say(line: str) -> None:
    from loadstack.importers import printable

    print(f"import: {printable(line)}", file=sys.stderr)


def _fail(command: str, exc: Exception, source: str) -> int:
    """Each line of the problem, naming the input file (messages about a field may not say it)."""
    from loadstack.importers import printable

    for line in str(exc).splitlines() or [""]:
        where = "" if line.startswith(source) else f"{source}: "
        print(f"loadstack import {command}: {where}{printable(line)}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _max_bytes(args: argparse.Namespace) -> int:
    return int(args.max_input_mb * 1024 * 1024)


def _write(scenario: Any, args: argparse.Namespace, source: str, style: str, lines: list[str]) -> int:
    from loadstack import masking
    from loadstack.importers import output

    shown = masking.mask_url(source) if "://" in source else Path(source).name
    text = output.render(
        scenario, args.format, output.header(scenario, f"loadstack import {args.import_command} {shown}", source),
        style=style,
    )  # fmt: skip
    where = output.write(text, args.output, force=args.force, files=scenario.files())
    for line in lines + output.summary(scenario):
        _say(line)
    if where != "stdout":
        _say(f"wrote {where} ({args.format})")
    return EXIT_OK


def cmd_import_har(args: argparse.Namespace) -> int:
    from loadstack.durations import parse_duration
    from loadstack.importers import ImportProblem, correlate, har

    try:
        doc, notes = har.load(args.file, max_bytes=_max_bytes(args))
        selection = har.select(doc, include=args.include, exclude=args.exclude, keep_static=args.keep_static)
        if not selection.kept:
            raise ImportProblem(f"{args.file}: no API calls left after filtering ({dict(selection.dropped)})")
        origin = har.main_origin(selection.kept)
        others = [r for r in selection.kept if r.origin != origin]
        if others:
            selection.dropped[f"other origins than {origin}"] += len(others)
            selection.kept = [r for r in selection.kept if r.origin == origin]
        name = args.name or Path(args.file).stem
        scenario = correlate.scenario_from(
            selection.kept,
            name=_step_safe(name),
            description=f"Recorded with {selection.creator} against {origin}",
            min_think=parse_duration(args.min_think),
            max_think=parse_duration(args.max_think),
        )
        kept = len(selection.kept)
        total = kept + sum(selection.dropped.values())
        detail = ", ".join(f"{n} {why}" for why, n in selection.dropped.most_common())
        counts = f"kept {kept} calls of {total} entries" + (
            f"; dropped {sum(selection.dropped.values())}: {detail}" if detail else ""
        )
        return _write(scenario, args, args.file, "session", [*notes, counts, *selection.notes])
    except (ImportProblem, ValueError) as exc:
        return _fail("har", exc, args.file)


def cmd_import_openapi(args: argparse.Namespace) -> int:
    from loadstack.importers import ImportProblem, openapi

    try:
        doc = openapi.load(args.source, allow_remote=args.allow_remote, max_bytes=_max_bytes(args))
        scenario = openapi.scenario_from(
            doc, name=_step_safe(args.name) if args.name else None, seed=args.seed
        )
        return _write(scenario, args, args.source, "tasks", [])
    except (ImportProblem, ValueError) as exc:
        return _fail("openapi", exc, args.source)


def _positive_mb(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a number of megabytes") from None
    if not 0 < value <= 4096:
        raise argparse.ArgumentTypeError("between 0 and 4096 MB")
    return value


def _common_flags(p: argparse.ArgumentParser, default_mb: int) -> None:
    p.add_argument("--output", "-o", help="file to write (default: stdout); never replaced without --force")
    p.add_argument("--format", choices=["chain", "locustfile"], default="chain", help="default: chain")
    p.add_argument("--name", help="scenario name (default: from the input)")
    p.add_argument("--force", action="store_true", help="replace --output (and its files/) if they exist")
    p.add_argument(
        "--max-input-mb", type=_positive_mb, default=default_mb, metavar="MB",
        help=f"refuse larger input files (default {default_mb})",
    )  # fmt: skip


def register(sub: Any) -> None:
    """``import har`` and ``import openapi`` on the main parser's subcommands."""
    imp = sub.add_parser(
        "import", help="generate a chain or locustfile from a HAR recording or OpenAPI"
    ).add_subparsers(dest="import_command", required=True, metavar="SOURCE")
    p = imp.add_parser("har", help="a browser recording (DevTools: Network → Save all as HAR)")
    p.add_argument("file")
    _common_flags(p, 64)
    p.add_argument(
        "--include", action="append", metavar="GLOB", help="keep only matching host/path (repeatable)"
    )
    p.add_argument("--exclude", action="append", metavar="GLOB", help="drop matching host/path (repeatable)")
    p.add_argument("--keep-static", action="store_true", help="keep static assets and page loads")
    p.add_argument("--max-think", default="5s", help="cap recorded think times (default 5s)")
    p.add_argument("--min-think", default="100ms", help="ignore shorter gaps (default 100ms)")
    p.set_defaults(handler=cmd_import_har)
    p = imp.add_parser("openapi", help="every operation of an OpenAPI 3 document (URL or file)")
    p.add_argument("source", metavar="URL|FILE")
    _common_flags(p, 16)
    p.add_argument("--seed", type=int, default=1234, help="for generated values (default 1234)")
    p.add_argument("--allow-remote", action="store_true", help="fetch the document from a non-local URL")
    p.set_defaults(handler=cmd_import_openapi)
