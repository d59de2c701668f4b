"""``summary.json`` as ``loadstack report`` and ``compare`` read it: checked before any use.

A results folder is input like any other: copied between machines, fetched from
a cluster, edited by hand.  A corrupt or wrongly typed summary is an error
naming the file and the field (exit status 2), never a traceback half-way
through a report; run ids are checked like the command line's, so no path is
built from whatever a file says.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator, model_validator

from loadstack import configfile
from loadstack.configfile import ConfigError, ConfigIssue
from loadstack.runcontext import RUN_ID_PATTERN

# A summary with histograms of many endpoints is a few MB; this is far beyond any real one.
MAX_SUMMARY_BYTES = 256 * 1024 * 1024
MAX_COUNT = 10**15  # requests: more than any run, small enough for exact float arithmetic

RunId = Annotated[str, Field(pattern=RUN_ID_PATTERN.pattern)]
Count = Annotated[int, Strict(), Field(ge=0, le=MAX_COUNT)]
Figure = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
Share = Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False)]


class _Doc(BaseModel):
    # Fields report/compare do not read are kept as they are (a newer loadstack may add some).
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class Totals(_Doc):
    count: Count
    failures: Count
    failure_rate: Share
    rps: Figure
    avg_ms: Figure
    p50_ms: Figure
    p95_ms: Figure
    p99_ms: Figure
    max_ms: Figure = 0.0

    @model_validator(mode="after")
    def _failures_counted(self) -> Totals:
        if self.failures > self.count:
            raise ValueError(f"failures ({self.failures}) cannot exceed count ({self.count})")
        return self


class RequestRow(Totals):
    type: Annotated[str, Field(max_length=10_000)]
    name: Annotated[str, Field(max_length=10_000)]
    histogram: dict[str, Count] | None = None

    @field_validator("histogram")
    @classmethod
    def _buckets(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        for key in value or {}:
            try:
                bucket = float(key)
            except ValueError:
                raise ValueError(f"bucket {key[:40]!r} is not a number of milliseconds") from None
            if not math.isfinite(bucket) or bucket < 0:
                raise ValueError(f"bucket {key[:40]!r} is not a finite number of milliseconds >= 0")
        return value


class GateResult(_Doc):
    target: str
    metric: str
    threshold: float | None = None
    actual: float | None = None
    status: Literal["pass", "fail", "error"]


class LagFigures(_Doc):
    p50: Figure
    p99: Figure
    max: Figure


class GeneratorFigures(_Doc):
    lag_ms: LagFigures
    cpu_share: Figure
    cpu_share_max: Figure


class Generator(_Doc):
    """summary.json's ``generator`` (loadstack.generator_health): compare reads ``saturated``."""

    saturated: Annotated[bool, Strict()]
    reason: Annotated[str, Field(max_length=100_000)] = ""
    overall: GeneratorFigures


class Summary(_Doc):
    run_id: RunId
    profile: str
    start: str | None = None
    verdict: str | None = None
    totals: Totals
    requests: list[RequestRow]
    gates: list[GateResult] = Field(default_factory=list)
    generator: Generator | None = None


def check_run_id(run_id: str, what: str = "run id") -> str:
    """A run id as the command line gives it (or ``latest``): a name, never a path."""
    if run_id != "latest" and not RUN_ID_PATTERN.fullmatch(run_id):
        raise ConfigError(
            [
                ConfigIssue(
                    "command line",
                    None,
                    what,
                    f"invalid run id {run_id[:80]!r}: use 1-64 letters, digits, '.', '_' or '-'",
                )
            ]
        )
    return run_id


def resolve_run(results_root: Path, run_id: str) -> str:
    """The run id a (checked) command-line run id names: ``latest`` follows ``results/latest``."""
    check_run_id(run_id)
    link = results_root / "latest"
    if run_id != "latest" or not link.is_symlink():
        return run_id
    target = os.readlink(link)
    if not RUN_ID_PATTERN.fullmatch(target):
        raise ConfigError(
            [ConfigIssue(str(link), None, "", f"points to {target[:80]!r}, not a run folder next to it")]
        )
    return target


def load(results_root: Path, run_id: str) -> Summary | None:
    """The checked summary of a run, None when the run has none; :class:`ConfigError` when it is bad."""
    path = results_root / resolve_run(results_root, run_id) / "summary.json"
    if not path.exists():
        return None
    return read(path)


def read(path: Path) -> Summary:
    text = configfile.read_text(path, MAX_SUMMARY_BYTES)
    try:
        data = configfile.loads_json(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([ConfigIssue(str(path), exc.lineno, "", f"invalid JSON: {exc.msg}")]) from None
    except configfile.NumberTooLong as exc:
        raise ConfigError([ConfigIssue(str(path), None, "", str(exc))]) from None
    except RecursionError:
        raise ConfigError([ConfigIssue(str(path), None, "", "JSON nested too deeply")]) from None
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(str(path), None, "", "expected a JSON object (a loadstack summary)")])
    try:
        return Summary.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            [
                ConfigIssue(
                    str(path),
                    None,
                    configfile.field_path(err["loc"]),
                    _message(err) + "; is this a summary.json written by loadstack?",
                )
                for err in exc.errors()[:10]
            ]
        ) from None


def _message(err: dict[str, Any]) -> str:
    if err["type"] == "missing":
        return "required field is missing"
    given = err.get("input")
    shown = "" if isinstance(given, dict | list) else f" (got {str(given)[:60]!r})"
    return err["msg"].removeprefix("Value error, ") + shown


def as_dict(summary: Summary) -> dict[str, Any]:
    """The plain document the report and comparison code works on (checked values, extras kept)."""
    return summary.model_dump(mode="python", exclude_none=False)
