"""The masker's cost: CPU µs per MB masked, for the shapes of text it meets.

Everything loadstack prints or writes passes :class:`loadstack.masking.Masker`, one value at a
time (a line, a request name, a CSV cell), so its cost per MB is what a long name, a large
report or a chatty log costs.  Every pattern is linear (issue 27, finding 12: a quadratic
pattern took about an hour for one 1 MB token); this prints the figure per shape, each a median
over ``--rounds`` with its min–max, and judges it against a ceiling of 1 s per MB, about a
thousandth of what the quadratic pattern cost.

    python -m bench masker [--mb 1] [--rounds 5]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
from collections.abc import Callable

from bench.harness import Spread, Target, print_figure
from loadstack.masking import Masker

TARGET = Target(1_000_000, at_least=False)  # µs per MB


def shapes(n: int) -> dict[str, Callable[[Masker], object]]:
    """What is masked, by shape: each a function of the masker doing one pass over ``n`` characters."""
    token = ("aB3+.-Zq9_" * n)[:n]  # the shape the old URL pattern was quadratic on
    log = ("12:00:01 worker-1 GET /api/v1/orders?page=2 200 in 12 ms token=abc password=x\n" * n)[:n]
    names = ("/ok?refresh_token=abc&apikey=def postgresql://app:pw@127.0.0.1/db " * n)[:n]
    rows = [["GET", f"/api/v1/items/{i}?sig=abc{i}", str(i), "0", "12.5"] for i in range(n // 40)]
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    table = buf.getvalue()
    doc = json.dumps({"requests": [{"name": f"/api/{i}?key=k{i}", "count": i} for i in range(n // 40)]})
    return {
        "token-like value": lambda m: m(token),
        "log lines": lambda m: [m(line) for line in log.splitlines()],
        "request names": lambda m: m(names),
        "CSV document": lambda m: m.mask_document(table, "csv"),
        "JSON document": lambda m: m.mask_document(doc, "json"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--mb", type=float, default=1.0, help="size of each input, in millions of characters")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    n = int(args.mb * 1_000_000)
    masker = Masker(["a-known-secret-value", "another-one-1234"])
    print(f"masker: CPU µs per MB of text ({args.mb:g} MB per pass, {args.rounds} rounds)", flush=True)
    for name, one_pass in shapes(n).items():
        costs = []
        for _ in range(args.rounds):
            start = time.process_time()
            one_pass(masker)
            costs.append((time.process_time() - start) * 1e6 / args.mb)
        print_figure("masker", f"{name} µs/MB", Spread.of(costs), TARGET, spec=",.0f")
