"""``results/<run_id>/junit.xml``: the run's SLO gates as JUnit test results, for CI systems.

One ``testsuite`` (the profile), one ``testcase`` per gate.  A gate whose
threshold was breached is a ``failure`` whose message carries the measured value
against the threshold; a gate that matches no request of the run is an
``error``.  The layout follows the Jenkins/xunit-plugin JUnit schema that CI
systems (GitLab, GitHub Actions reporters, Jenkins, Azure DevOps) read.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

from loadstack.gates import Gate, describe


def _case_name(index: int, gate: Gate | None, results: list[dict[str, Any]]) -> str:
    label = results[0]["target"] if results else (gate.target.label() if gate else f"gate {index}")
    metrics = ", ".join(r["metric"] for r in results)
    return f"{label}: {metrics}"


def build(summary: dict[str, Any], gates: list[Gate]) -> ET.ElementTree:
    results = summary.get("gates") or []
    by_gate: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        by_gate[r["gate"]].append(r)
    failures = sum(1 for rows in by_gate.values() if any(r["status"] == "fail" for r in rows))
    errors = sum(1 for rows in by_gate.values() if any(r["status"] == "error" for r in rows))
    duration = f"{float(summary.get('duration_s') or 0):.3f}"
    suite_name = f"loadstack.{summary.get('profile', 'run')}"
    root = ET.Element(
        "testsuites",
        name="loadstack SLO gates",
        tests=str(len(by_gate)),
        failures=str(failures),
        errors=str(errors),
        time=duration,
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name=suite_name,
        tests=str(len(by_gate)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=duration,
        timestamp=str(summary.get("start") or "")[:19],
    )
    props = ET.SubElement(suite, "properties")
    for name in ("run_id", "profile", "host", "end_reason", "verdict"):
        if summary.get(name) is not None:
            ET.SubElement(props, "property", name=name, value=str(summary[name]))
    # An open-model run: both p99s of its iterations, so CI shows the stall the service time hides.
    total = (summary.get("corrected") or {}).get("total")
    if total:
        for measure, prop in (("service", "service_p99_ms"), ("response", "corrected_p99_ms")):
            ET.SubElement(props, "property", name=prop, value=f"{total[measure]['p99_ms']:g}")
    for index in sorted(by_gate):
        rows = by_gate[index]
        gate = gates[index] if index < len(gates) else None
        case = ET.SubElement(
            suite, "testcase", name=_case_name(index, gate, rows), classname=suite_name, time=duration
        )
        where = str(gate.source) if gate is not None and gate.source else None
        broken = [r for r in rows if r["status"] == "error"]
        failed = [r for r in rows if r["status"] == "fail"]
        if broken:
            error = ET.SubElement(case, "error", message=broken[0]["message"], type="GateMatchesNothing")
            error.text = "\n".join(r["message"] for r in broken)
        elif failed:
            lines = [f"{r['metric']}: {describe(r)}" for r in failed]
            failure = ET.SubElement(case, "failure", message="; ".join(lines), type="SLOBreached")
            failure.text = "\n".join([*lines, *([f"declared at {where}"] if where else [])])
        passed = [f"{r['metric']}: {describe(r)}" for r in rows if r["status"] == "pass"]
        if passed:
            ET.SubElement(case, "system-out").text = "\n".join(passed)
    _xml_safe(root)
    ET.indent(root)
    return ET.ElementTree(root)


# Characters XML 1.0 cannot hold at all: a target or host with one would make the whole file
# unreadable to CI, so they are shown as \xNN instead.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _escape(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _xml_safe(root: ET.Element) -> None:
    for element in root.iter():
        element.attrib = {k: _escape(v) for k, v in element.attrib.items()}
        if element.text:
            element.text = _escape(element.text)


def write(path: Path, summary: dict[str, Any], gates: list[Gate]) -> None:
    """Write ``junit.xml`` (UTF-8, with an XML declaration)."""
    build(summary, gates).write(path, encoding="utf-8", xml_declaration=True)
