"""Every output of a real run parses with its own parser after masking, and holds no secret.

The run's request names, failure messages and exceptions carry the secret forms of issue 27
(findings 8 and 11: keyword DSNs with , \\ ' " & } in the password, ``sslpassword=``, commas in a
URI and in Redis' ``?password=``, ``refresh_token=``, ``apikey=``, ``key=``, ``sig=``,
``session=``, ``pwd=``), plus markup and quotes.  Each file loadstack or Locust writes is then read
the way its consumers read it: JSON with ``json``, CSV with ``csv``, ``junit.xml`` with
``junitparser``, SVG with ``xml.etree``, HTML with ``html.parser`` (and Locust's report's data with
``json``, its code compared with Locust's own), the exposition with prometheus_client's parser.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import locust
import pytest
from junitparser import JUnitXml
from prometheus_client.parser import text_string_to_metric_families

from loadstack import exitcodes
from tests.helpers import loadstack
from tests.masked_run import Run

pytestmark = pytest.mark.slow

LOCUST_REPORT = Path(locust.__file__).parent / "webui" / "dist" / "report.html"
# What a masked request name looks like in every output: the run really had these requests.
MASKED_NAMES = (
    "/ok?refresh_token=***&page=1",
    "/ok?key=***&sig=***",
    "redis://127.0.0.1:6379/0?password=***",
)


class _Strict(HTMLParser):
    """html.parser, counting elements, and failing on a `<script>` or `<style>` left open."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.text: list[str] = []
        self.elements = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.elements += 1
        if tag in ("script", "style", "table", "svg"):
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "table", "svg"):
            assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open}"
            self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(path: Path) -> str:
    parser = _Strict()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert parser.elements > 5 and parser.open == [], (path, parser.open)
    return "".join(parser.text)


def scripts(text: str) -> list[str]:
    return re.findall(r"<script\b[^>]*>(.*?)</script>", text, re.S)


def report_data(path: Path) -> dict:
    """Locust's report: its data as the page reads it (``window.templateArgs``), and its code as Locust ships it."""
    text = path.read_text(encoding="utf-8")
    parse_html(path)
    shipped = scripts(LOCUST_REPORT.read_text(encoding="utf-8"))
    written = scripts(text)
    code = [s for s in shipped if "templateArgs =" not in s]
    assert code and all(s in written for s in code), "the report's JavaScript differs from Locust's"
    (data,) = [s for s in written if "templateArgs =" in s]
    return json.JSONDecoder().raw_decode(data.split("templateArgs =", 1)[1].strip())[0]


def test_every_output_parses_and_holds_no_secret(tmp_path: Path, leaky_run: Run) -> None:
    run, canary, scraped = leaky_run, leaky_run.canary, leaky_run.scraped
    # The leaky user raises on purpose (a secret in an exception's message), and user-code
    # exceptions fail a run as in plain Locust (issue 27, finding 20): exit status 1, not 0.
    assert run.returncode == exitcodes.FAILURES, run.output[-3000:]
    assert scraped, "the exporter was scraped during the run"
    results = run.results
    outputs = [run.output]
    for args in (
        ("report", "leaky", "--results-dir", str(results), "--output", str(tmp_path / "combined.html")),
        ("compare", "leaky", "--baseline", "leaky", "--results-dir", str(results)),
    ):
        out = loadstack(*args)
        assert out.returncode == 0, out.stdout + out.stderr
        outputs.append(out.stdout + out.stderr)

    files = sorted(p for p in [*results.rglob("*"), tmp_path / "combined.html"] if p.is_file())
    checked: dict[str, str] = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            json.loads(text)
        elif path.suffix == ".jsonl":
            for line in text.splitlines():
                json.loads(line)
        elif path.suffix == ".csv":
            rows = list(csv.reader(io.StringIO(text, newline="")))
            assert rows and {len(r) for r in rows} == {len(rows[0])}, (path, rows[:3])
        elif path.name == "junit.xml":
            suites = JUnitXml.fromfile(str(path))
            assert sum(s.tests for s in suites) == 2
        elif path.suffix == ".svg":
            assert ET.fromstring(text).tag.endswith("svg")
        elif path.name == "report.html" and path.parent.name == "leaky":
            data = report_data(path)
            names = [s["name"] for s in data["requests_statistics"]]
            assert all(n in names for n in MASKED_NAMES), names
            assert any("apikey=***" in f["error"] for f in data["failures_statistics"])
            assert any("session=***" in e["msg"] for e in data["exceptions_statistics"])
        elif path.suffix == ".html":
            assert "/ok?refresh_token=***&amp;page=1" in text or "/ok?refresh_token=***&page=1" in parse_html(
                path
            )
        elif path.suffix == ".prom":
            families = list(text_string_to_metric_families(text))
            labels = {s.labels.get("name") for f in families for s in f.samples}
            assert all(n in labels for n in MASKED_NAMES), labels
        elif path.suffix == ".log":
            pass  # text
        else:
            continue
        checked[path.name] = text
    for name in ("summary.json", "run-metadata.json", "history.jsonl", "summary.csv", "results_stats.csv",
                 "results_failures.csv", "results_exceptions.csv", "results_stats_history.csv", "junit.xml",
                 "workload.svg", "report.html", "combined.html", "compare-leaky.html", "compare-leaky.json",
                 "metrics.prom", "master.log"):  # fmt: skip
        assert name in checked, f"{name} was written and parsed"
    for text in scraped:
        list(text_string_to_metric_families(text))
    leaks = [name for name, text in checked.items() if canary in text]
    leaks += [f"output {i}" for i, text in enumerate(outputs) if canary in text]
    leaks += [f"/metrics scrape {i}" for i, text in enumerate(scraped) if canary in text]
    assert leaks == [], leaks
    doc = json.loads(checked["summary.json"])
    assert {r["name"] for r in doc["requests"]} >= set(MASKED_NAMES)
