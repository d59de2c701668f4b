"""``loadstack report|compare``: the command-line side of the results.

Run ids come from the command line or a checked history line, never from what a
``summary.json`` says, so output paths stay under the results directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from loadstack import exitcodes, limits
from loadstack.flags import float_in, int_in


def _summaries_dir(args: argparse.Namespace) -> Path:
    from loadstack import paths

    return Path(args.results_dir) if args.results_dir else paths.results_root()


def cmd_report(args: argparse.Namespace) -> int:
    from loadstack.report import history, summaries
    from loadstack.report.html import runs_report
    from loadstack.report.locate import describe_run, grafana_url

    root = _summaries_dir(args)
    entries = history.load(root)
    if args.run_ids:
        run_ids = [summaries.resolve_run(root, r) for r in args.run_ids]
    else:
        run_ids = [e["run_id"] for e in entries if (root / e["run_id"] / "summary.json").exists()][
            -args.last :
        ]
        run_ids = list(dict.fromkeys(run_ids)) or [summaries.resolve_run(root, "latest")]
    loaded = [(r, summaries.load(root, r)) for r in run_ids]
    missing = [r for r, s in loaded if s is None]
    if missing:
        print(f"loadstack report: no results for {', '.join(missing)} under {root}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    docs = [summaries.as_dict(s) for _, s in loaded if s is not None]
    out = Path(args.output) if args.output else root / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(runs_report(docs, {e["run_id"]: e for e in entries}), encoding="utf-8")
    print(f"combined report ({len(docs)} runs): {out}")
    print("\n".join(describe_run(root / run_ids[-1])))
    print(f"Grafana dashboard (compose stack): {grafana_url(run_ids[-1])}")
    return exitcodes.OK


def cmd_compare(args: argparse.Namespace) -> int:
    from loadstack import results
    from loadstack.report import history, summaries
    from loadstack.report.compare import Settings, compare, format_table
    from loadstack.report.html import comparison_page

    root = _summaries_dir(args)
    if args.baseline != "latest-passing":
        summaries.check_run_id(args.baseline, "--baseline")
    # Output paths are built from two run ids only: the command line's or a history line's (both
    # checked to be names), never from what a summary.json says.
    current_id = summaries.resolve_run(root, args.run_id)
    current = summaries.load(root, current_id)
    if current is None:
        print(f"loadstack compare: no results for {args.run_id} under {root}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    baseline_id = args.baseline
    if baseline_id == "latest-passing":
        passing = [e for e in history.load(root) if e["verdict"] == "pass" and e["run_id"] != current_id]
        same = [e for e in passing if e["profile"] == current.profile]
        chosen = (same or passing)[-1:]
        if not chosen:
            print(
                f"loadstack compare: no passing run in {root / 'history.jsonl'} to compare with; pass --baseline RUN_ID",
                file=sys.stderr,
            )
            return exitcodes.BAD_INPUT
        baseline_id = chosen[0]["run_id"]
    baseline_id = summaries.resolve_run(root, summaries.check_run_id(baseline_id, "--baseline"))
    baseline = summaries.load(root, baseline_id)
    if baseline is None:
        print(f"loadstack compare: no results for baseline {baseline_id} under {root}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    settings = Settings(
        p95_tolerance=args.p95_tolerance,
        p95_min_ms=args.p95_min_ms,
        error_tolerance_pp=args.error_tolerance_pp,
        alpha=args.alpha,
    )
    base_doc, current_doc = summaries.as_dict(baseline), summaries.as_dict(current)
    comparison = compare(base_doc, current_doc, settings)
    print(format_table(comparison))
    run_dir = root / current_id
    json_path, html_path = run_dir / f"compare-{baseline_id}.json", run_dir / f"compare-{baseline_id}.html"
    results.write_json(json_path, comparison.as_dict())
    html_path.write_text(comparison_page(comparison, base_doc, current_doc), encoding="utf-8")
    print(f"\ncomparison: {html_path} (and .json)")
    if comparison.inconclusive:
        return exitcodes.GENERATOR_SATURATED
    return exitcodes.REGRESSION if comparison.regressions else exitcodes.OK


def register(sub: Any) -> None:
    """Add ``loadstack report`` and ``loadstack compare`` to the CLI."""
    p = sub.add_parser("report", help="combined HTML report over runs; prints where everything is")
    p.add_argument(
        "run_ids", nargs="*", metavar="RUN_ID", help="default: the last --last runs of results/history.jsonl"
    )
    p.add_argument("--last", type=int_in(1, 10_000), default=10)
    p.add_argument("--output", help="default: results/report.html")
    p.add_argument("--results-dir", help="default: ./results")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser(
        "compare", help="regression check of a run against a baseline (exit 4 on regression, 7 inconclusive)"
    )
    p.add_argument("run_id", nargs="?", default="latest", metavar="RUN_ID", help="default: latest")
    p.add_argument("--baseline", default="latest-passing", help="RUN_ID or latest-passing (default)")
    p.add_argument(
        "--p95-tolerance",
        type=float_in(0, 1000),
        default=0.10,
        help="relative p95 increase tolerated (default 0.10)",
    )
    p.add_argument(
        "--p95-min-ms",
        type=float_in(0, limits.MAX_MS),
        default=5.0,
        help="absolute p95 increase tolerated in ms (default 5)",
    )
    p.add_argument(
        "--error-tolerance-pp",
        type=float_in(0, 100),
        default=1.0,
        help="error-rate increase tolerated, in points",
    )
    p.add_argument(
        "--alpha", type=float_in(0, 1, lo_open=True), default=0.05, help="significance level (default 0.05)"
    )
    p.add_argument("--results-dir", help="default: ./results")
    p.set_defaults(handler=cmd_compare)
