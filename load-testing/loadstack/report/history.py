"""``results/history.jsonl``: one line per finished run, the index that reports and comparisons read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loadstack import configfile
from loadstack.configfile import ConfigError, ConfigIssue
from loadstack.runcontext import RUN_ID_PATTERN

# About 500 bytes a run: room for a million runs.
MAX_HISTORY_BYTES = 512 * 1024 * 1024

FIGURES = ("count", "failures", "failure_rate", "rps", "avg_ms", "p50_ms", "p95_ms", "p99_ms")


def verdict_of(summary: dict[str, Any], interrupted: bool = False) -> str:
    """pass | fail (an SLO gate failed) | no requests (nothing was sent) | error (a gate matched
    nothing) | exceptions (user code raised) | teardown failed (data left on the target) |
    failures (no gates) | generator saturated (it would pass, but measured the generator) |
    interrupted.  The same order as the exit status (master.exit_code_for)."""
    if interrupted:
        return "interrupted"
    gate = summary.get("verdict")
    if gate == "fail":
        return "fail"
    if not summary["totals"]["count"]:
        return "no requests"
    if gate == "error":
        return "error"
    if (summary.get("exceptions") or {}).get("count"):
        return "exceptions"
    if (summary.get("teardown") or {}).get("left"):
        return "teardown failed"
    verdict = str(gate) if gate else ("failures" if summary["totals"]["failures"] else "pass")
    if verdict == "pass" and saturation_decides(summary):
        return "generator saturated"
    return verdict


def saturation_decides(summary: dict[str, Any]) -> bool:
    """A saturated generator is the run's verdict (exit 7) unless LOADSTACK_GENERATOR_SATURATED=warn."""
    block = summary.get("generator") or {}
    return bool(block.get("saturated")) and block.get("on_saturation", "fail") != "warn"


def entry(summary: dict[str, Any], *, run_dir: Path, sut_version: str | None) -> dict[str, Any]:
    """The history line of a finished run: figures and the outcome the master decided."""
    outcome = summary.get("outcome") or {}
    return {
        "run_id": summary["run_id"],
        "profile": summary["profile"],
        "host": summary.get("host"),
        "sut_version": sut_version,
        "start": summary["start"],
        "end": summary["end"],
        "duration_s": summary["duration_s"],
        "totals": {k: summary["totals"][k] for k in FIGURES},
        "verdict": outcome.get("verdict") or verdict_of(summary),
        "exit_code": outcome.get("exit_code"),
        "gates": {
            s: sum(1 for g in summary.get("gates", []) if g["status"] == s) for s in ("pass", "fail", "error")
        },
        "results_dir": str(run_dir),
    }


def append(results_root: Path, line: dict[str, Any]) -> dict[str, Any]:
    """Add one run's line to ``results/history.jsonl``."""
    results_root.mkdir(parents=True, exist_ok=True)
    with open(results_root / "history.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, separators=(",", ":")) + "\n")
    return line


class Line(BaseModel):
    """What ``report`` and ``compare`` read of a history line (other fields are kept as they are)."""

    model_config = ConfigDict(extra="allow")

    run_id: Annotated[str, Field(pattern=RUN_ID_PATTERN.pattern)]
    profile: str | None = None
    verdict: str | None = None
    sut_version: str | None = None


def load(results_root: Path) -> list[dict[str, Any]]:
    """The lines of ``results/history.jsonl``, checked: a bad line is an error naming its line and field.

    Only a last line cut off mid-write (no newline at its end, not JSON) is skipped: that is a
    crash while appending, and it must not hide every run before it.
    """
    path = results_root / "history.jsonl"
    if not path.exists():
        return []
    text = configfile.read_text(path, MAX_HISTORY_BYTES)
    lines = text.split("\n")
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = configfile.loads_json(line)
        except (json.JSONDecodeError, RecursionError, configfile.NumberTooLong) as exc:
            if number == len(lines) and not isinstance(exc, configfile.NumberTooLong):
                continue  # the last line, without its newline: a torn write
            detail = (
                exc.msg
                if isinstance(exc, json.JSONDecodeError)
                else str(exc)
                if isinstance(exc, configfile.NumberTooLong)
                else "nested too deeply"
            )
            raise ConfigError([ConfigIssue(str(path), number, "", f"not a JSON line ({detail})")]) from None
        if not isinstance(data, dict):
            raise ConfigError([ConfigIssue(str(path), number, "", "expected a JSON object per line")])
        try:
            out.append(Line.model_validate(data).model_dump())
        except ValidationError as exc:
            raise ConfigError(
                [
                    ConfigIssue(str(path), number, configfile.field_path(err["loc"]), _message(err))
                    for err in exc.errors()
                ]
            ) from None
    return out


def _message(err: dict[str, Any]) -> str:
    given = err.get("input")
    shown = "" if isinstance(given, dict | list) else f" (got {str(given)[:60]!r})"
    return err["msg"] + shown
