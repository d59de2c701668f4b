"""The dashboard as Grafana reads it: its typed model, and its queries expanded the way Grafana does.

Grafana cannot run on the test machine (no Debian package, no container registry), so this helper
does the two things Grafana does with ``infra/grafana/dashboards/load-testing.json`` before a
person sees a panel:

1. **Parse it with Grafana's own typed model.** ``grafana-foundation-sdk`` (the ``test`` extra;
   the build for Grafana 11.3, the image docker-compose.yml runs) generates its Python classes
   from the same CUE kinds Grafana validates dashboards with. Its ``from_json`` is lenient (it
   keeps whatever it is given), so :func:`model_problems` makes it strict: every attribute must
   have its annotated type (enums by value), every panel type and datasource type must be one the
   SDK registers as a plugin, and no key may be dropped on the way through the model (a
   misspelled key is one Grafana ignores too). :func:`datasource_problems` checks every uid
   against the provisioning file.

2. **Expand each query as Grafana does** (:func:`expand`), then the test sends it to a real
   Prometheus as a range query. The rules and where they are documented:

   * Template variables, formatted by the Prometheus data source
     (https://grafana.com/docs/grafana/latest/datasources/prometheus/template-variables/ ,
     "Use template variables"; code: ``interpolateQueryExpr`` and ``prometheusSpecialRegexEscape``
     in Grafana's Prometheus data source). A variable that is neither multi-value nor has
     "Include All" gets its value with backslashes and single quotes escaped. Otherwise each value
     is regex-escaped (``\\`` for each of ``$^*{}[]+?.()|`` and doubled backslashes, because the
     value lands inside a PromQL string), one value stands alone and several become
     ``(a|b)``.
   * "All" (https://grafana.com/docs/grafana/latest/dashboards/variables/add-template-variables/ ,
     "Include All option" and "Custom all value"): with a custom all value, that value is put in
     as it is, never escaped (``.*``); without one, All is every option, formatted like a
     multi-value selection.
   * Options of a ``custom`` variable are its comma-separated query (``\\,`` escapes a comma,
     ``text : value`` names both). A ``query`` variable's ``label_values(metric, label)`` asks
     Prometheus for the label's values on series of ``metric`` within the dashboard's range
     (``/api/v1/label/<label>/values?match[]=``), then sorts them by the variable's ``sort``
     (https://grafana.com/docs/grafana/latest/datasources/prometheus/template-variables/ ,
     "Query variable").
   * ``$__interval`` (https://grafana.com/docs/grafana/latest/dashboards/variables/add-template-variables/#__interval
     and https://grafana.com/docs/grafana/latest/panels-visualizations/query-transform-data/#query-options):
     the time range divided by the panel's max data points, which default to the panel's width in
     pixels. The quotient is rounded to Grafana's fixed ladder of steps (``roundInterval`` in
     ``@grafana/data`` rangeutil, table :data:`ROUND_LADDER_MS`) and never goes below the "Min
     interval": the panel's ``interval``, else the data source's ``timeInterval`` ("Scrape
     interval" in the data source settings). The step of the range query, and the value of
     ``$__interval`` in the expression (Grafana's backend writes the step), is that interval, or
     range/11000 rounded if larger (Prometheus's limit of 11,000 points per series);
     ``$__rate_interval`` starts from the interval before that limit.
   * ``$__rate_interval`` (https://grafana.com/docs/grafana/latest/datasources/prometheus/template-variables/#use-__rate_interval
     and https://grafana.com/blog/2020/09/28/new-in-grafana-7.2-__rate_interval-for-prometheus-rate-queries-that-just-work/):
     ``max($__interval + scrape interval, 4 × scrape interval)``; the scrape interval is the data
     source's ``timeInterval`` (15 s when unset). Written as Go prints a duration (``20s``,
     ``1m0s``), which Prometheus accepts.
   * ``$__range``, ``$__range_s``, ``$__range_ms`` (same global-variables page): the dashboard's
     range, in whole seconds (rounded) with ``s``, in seconds, and in milliseconds.
   * ``$__interval`` is written in Grafana's short form (``5s``, ``1m``, ``250ms``), ``_ms``
     variants as integers.
   * Range queries start and end on a multiple of the step (Grafana's ``alignRange``), UTC.

   The panel width is the one approximation: the 24-column grid is taken as
   :data:`DASHBOARD_WIDTH_PX` pixels with no margins. Grafana subtracts a few pixels of padding,
   which moves the interval only when the quotient sits within a few percent of a rung of the
   ladder.

3. **Legends.** ``{{label}}`` in ``legendFormat`` is replaced by the series' label; a label the
   series lacks becomes an empty string, which is the bug :func:`legend_labels` lets a test catch.
"""

from __future__ import annotations

import enum
import json
import math
import re
import types
import typing
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import dashboard as sdk

register_default_plugins()

DASHBOARD_WIDTH_PX = 1920
GRID_COLUMNS = 24
# Grafana's default when the data source has no "Scrape interval" (timeInterval).
DEFAULT_SCRAPE_MS = 15_000
# Prometheus refuses more than 11,000 points per series; Grafana keeps the step above range/11000.
PROMETHEUS_MAX_POINTS = 11_000
ALL = "$__all"

# roundInterval (@grafana/data rangeutil.ts; gtime.RoundInterval in the Go backend): a computed
# interval below the first number of a rung becomes the second number (milliseconds).
ROUND_LADDER_MS: tuple[tuple[int, int], ...] = (
    (10, 1),
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (32_400_000, 21_600_000),
    (86_400_000, 43_200_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)
ROUND_LADDER_TOP_MS = 31_536_000_000

# Grafana's variable syntax: $name, ${name}, ${name:format}, [[name]].
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::[^}]+)?\}|\[\[(\w+)(?::\w+)?\]\]")
LEGEND_LABEL = re.compile(r"\{\{\s*(.+?)\s*\}\}")
REGEX_META = re.compile(r"[$^*{}\[\]+?.()|]")
DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
UNIT_MS["y"] = 365 * UNIT_MS["d"]


class DashboardModelError(AssertionError):
    """The dashboard does not pass Grafana's typed model; the message lists every problem."""


# --- 1. the typed model ---------------------------------------------------------------------


def _is_model(value: Any) -> bool:
    return callable(getattr(value, "to_json", None)) and hasattr(type(value), "from_json")


def _check_value(value: Any, ann: Any, where: str, problems: list[str]) -> None:
    """Append a problem for each place where ``value`` does not have the annotated type."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if ann is typing.Any or ann is object:
        if _is_model(value):
            _check_model(value, where, problems)
        return
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        choices = [a for a in args if a is not type(None)]
        attempts: list[list[str]] = []
        for choice in choices:
            found: list[str] = []
            _check_value(value, choice, where, found)
            if not found:
                return
            if isinstance(choice, type) and isinstance(value, choice):
                problems.extend(found)  # the model class it was parsed as: its own problems say most
                return
            attempts.append(found)
        if len(attempts) == 1:
            problems.extend(attempts[0])
        else:
            problems.append(f"{where}: {value!r} is none of {ann}")
        return
    if origin is typing.Literal:
        if value not in args:
            problems.append(f"{where}: {value!r} is not one of {args}")
        return
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{where}: {type(value).__name__} where a list belongs")
            return
        for i, item in enumerate(value):
            _check_value(item, args[0] if args else Any, f"{where}[{i}]", problems)
        return
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{where}: {type(value).__name__} where an object belongs")
            return
        for key, item in value.items():
            _check_value(item, args[1] if args else Any, f"{where}.{key}", problems)
        return
    if not isinstance(ann, type):
        return  # a TypeVar or similar: nothing the JSON can get wrong
    if issubclass(ann, enum.Enum):
        allowed = {m.value for m in ann}
        if (value.value if isinstance(value, enum.Enum) else value) not in allowed:
            problems.append(f"{where}: {value!r} is not a {ann.__name__} ({sorted(map(str, allowed))})")
        return
    if ann is bool:
        if not isinstance(value, bool):
            problems.append(f"{where}: {value!r} is not a boolean")
        return
    if ann is int:
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{where}: {value!r} is not an integer")
        return
    if ann is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            problems.append(f"{where}: {value!r} is not a number")
        return
    if ann is str:
        if not isinstance(value, str):
            problems.append(f"{where}: {value!r} is not a string")
        return
    if issubclass(ann, cogvariants.Dataquery):
        if isinstance(value, cogruntime.UnknownDataquery):
            problems.append(f"{where}: a query for a data source type the SDK does not know")
        elif isinstance(value, ann):
            _check_model(value, where, problems)
        else:
            problems.append(f"{where}: {type(value).__name__} is not a data query")
        return
    if hasattr(ann, "from_json"):
        if isinstance(value, ann):
            _check_model(value, where, problems)
        elif isinstance(value, dict):
            try:
                parsed = ann.from_json(value)
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                problems.append(f"{where}: not a {ann.__name__}: {exc!r}")
                return
            _check_model(parsed, where, problems)
        else:
            problems.append(f"{where}: {type(value).__name__} is not a {ann.__name__}")
        return
    if not isinstance(value, ann):
        problems.append(f"{where}: {type(value).__name__} is not a {ann.__name__}")


def _check_model(obj: Any, where: str, problems: list[str]) -> None:
    for name, ann in typing.get_type_hints(type(obj)).items():
        _check_value(getattr(obj, name, None), ann, f"{where}.{name}", problems)


def _dropped(original: Any, parsed: Any, where: str, problems: list[str]) -> None:
    """Keys of the JSON that the model did not keep (unknown to Grafana's schema)."""
    if isinstance(original, dict) and isinstance(parsed, dict):
        for key, value in original.items():
            if key not in parsed:
                problems.append(f"{where}.{key}: not a field of Grafana's model")
            else:
                _dropped(value, parsed[key], f"{where}.{key}", problems)
    elif isinstance(original, list) and isinstance(parsed, list) and len(original) == len(parsed):
        for i, (a, b) in enumerate(zip(original, parsed, strict=True)):
            _dropped(a, b, f"{where}[{i}]", problems)


def model_problems(data: dict[str, Any]) -> list[str]:
    """Everything Grafana's typed model rejects in a dashboard's JSON (empty when it passes)."""
    problems: list[str] = []
    try:
        board = sdk.Dashboard.from_json(data)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        return [f"dashboard: does not parse: {exc!r}"]
    _check_model(board, "dashboard", problems)
    for i, panel in enumerate(board.panels or []):
        if isinstance(panel, sdk.Panel) and cogruntime.panelcfg_config(panel.type_val) is None:
            problems.append(f"dashboard.panels[{i}].type: {panel.type_val!r} is not a Grafana panel type")
    _dropped(data, json.loads(json.dumps(board, cls=JSONEncoder)), "dashboard", problems)
    return problems


def parse_dashboard(data: dict[str, Any]) -> sdk.Dashboard:
    """The dashboard in Grafana's model; raises :class:`DashboardModelError` listing every problem."""
    problems = model_problems(data)
    if problems:
        raise DashboardModelError("\n".join(problems))
    return sdk.Dashboard.from_json(data)


@dataclass(frozen=True)
class Datasource:
    """A provisioned data source: what a dashboard may refer to, and its scrape interval."""

    uid: str
    type: str
    scrape_interval_ms: int


def provisioned_datasources(path: Path) -> dict[str, Datasource]:
    """The data sources a Grafana provisioning file defines, by uid."""
    doc = yaml.safe_load(path.read_text())
    out = {}
    for ds in doc["datasources"]:
        interval = (ds.get("jsonData") or {}).get("timeInterval")
        out[ds["uid"]] = Datasource(
            ds["uid"], ds["type"], duration_ms(interval) if interval else DEFAULT_SCRAPE_MS
        )
    return out


def datasource_problems(data: dict[str, Any], datasources: dict[str, Datasource]) -> list[str]:
    """Every datasource reference (panel, query, variable) that no provisioned data source answers."""
    refs: list[tuple[str, Any]] = []
    for i, panel in enumerate(data.get("panels", [])):
        refs.append((f"panels[{i}]", panel.get("datasource")))
        refs += [(f"panels[{i}].targets[{j}]", t.get("datasource")) for j, t in enumerate(panel["targets"])]
    for i, var in enumerate(data.get("templating", {}).get("list", [])):
        if var.get("type") == "query":
            refs.append((f"templating.list[{i}]", var.get("datasource")))
    problems = []
    for where, ref in refs:
        if not isinstance(ref, dict) or ref.get("uid") not in datasources:
            problems.append(f"{where}: datasource {ref!r} is not provisioned ({sorted(datasources)})")
        elif ref.get("type") != datasources[ref["uid"]].type:
            problems.append(
                f"{where}: datasource type {ref.get('type')!r} is not {datasources[ref['uid']].type!r}"
            )
    return problems


# --- 2. intervals --------------------------------------------------------------------------


def duration_ms(text: str) -> int:
    """A Grafana/Prometheus duration (``5s``, ``1m30s``, ``250ms``) in milliseconds."""
    parts = DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(n) * UNIT_MS[u] for n, u in parts)


def round_interval(ms: float) -> int:
    """Grafana's ``roundInterval``: the rung of the fixed ladder a computed interval falls on."""
    for below, value in ROUND_LADDER_MS:
        if ms < below:
            return value
    return ROUND_LADDER_TOP_MS


def short_duration(ms: int) -> str:
    """``$__interval`` as Grafana writes it (gtime.FormatInterval): the largest whole unit."""
    for unit in ("y", "d", "h", "m", "s", "ms"):
        if ms >= UNIT_MS[unit]:
            return f"{ms // UNIT_MS[unit]}{unit}"
    return "1ms"


def go_duration(ms: int) -> str:
    """``$__rate_interval`` as Grafana's backend writes it (Go's ``time.Duration.String``)."""
    if ms < 1_000:
        return f"{ms}ms" if ms else "0s"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest // 1000}" + (f".{rest % 1000:03d}".rstrip("0") if rest % 1000 else "")
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def panel_width_px(panel: dict[str, Any], dashboard_px: int = DASHBOARD_WIDTH_PX) -> int:
    """The panel's width in pixels: its share of the 24-column grid."""
    return round(panel["gridPos"]["w"] * dashboard_px / GRID_COLUMNS)


@dataclass(frozen=True)
class Intervals:
    """What Grafana computes for one query: ``$__interval`` (= step) and ``$__rate_interval``."""

    interval_ms: int
    step_ms: int
    rate_interval_ms: int


def intervals(
    panel: dict[str, Any], datasource: Datasource, range_ms: int, dashboard_px: int = DASHBOARD_WIDTH_PX
) -> Intervals:
    """``$__interval``, the query step and ``$__rate_interval`` of a panel over a range."""
    max_points = int(panel.get("maxDataPoints") or panel_width_px(panel, dashboard_px))
    min_ms = duration_ms(panel["interval"]) if panel.get("interval") else datasource.scrape_interval_ms
    interval = max(round_interval(range_ms / max_points), min_ms)
    step = max(interval, round_interval(range_ms / PROMETHEUS_MAX_POINTS))
    scrape = datasource.scrape_interval_ms
    return Intervals(interval, step, max(interval + scrape, 4 * scrape))


# --- 3. variables --------------------------------------------------------------------------


def regex_escape(value: str) -> str:
    """A value for ``=~"…"``: regex metacharacters escaped, escaped again for the PromQL string."""
    return REGEX_META.sub(lambda m: "\\\\" + m[0], value.replace("\\", "\\\\\\\\"))


def plain_escape(value: str) -> str:
    """A value of a single-value variable: backslashes and single quotes escaped only."""
    return value.replace("\\", "\\\\").replace("'", "\\\\'")


def custom_options(query: str) -> list[str]:
    """The values of a ``custom`` variable: comma-separated, ``\\,`` kept, ``text : value`` split."""
    values = []
    for item in re.findall(r"(?:\\,|[^,])+", query):
        item = item.replace("\\,", ",").strip()
        text_value = re.fullmatch(r"(.*\S)\s+:\s+(\S.*)", item)
        values.append(text_value[2] if text_value else item)
    return values


def prometheus_get(api: str, path: str, params: dict[str, Any]) -> Any:
    """One Prometheus HTTP API call; the ``data`` of a successful answer."""
    query = urllib.parse.urlencode(params, doseq=True)
    with urllib.request.urlopen(f"{api}{path}?{query}", timeout=30) as resp:
        doc = json.load(resp)
    if doc.get("status") != "success":
        raise AssertionError(f"{path} {params}: {doc}")
    return doc["data"]


def query_options(variable: dict[str, Any], api: str, start: float, end: float) -> list[str]:
    """The options Grafana lists for a ``query`` variable (``label_values(metric, label)`` only)."""
    query = variable["query"]
    text = query["query"] if isinstance(query, dict) else query
    match = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*", text)
    if not match:
        raise ValueError(f"variable {variable['name']}: only label_values(metric, label) is expanded: {text}")
    values = prometheus_get(
        api, f"/label/{match[2]}/values", {"match[]": match[1], "start": f"{start:.3f}", "end": f"{end:.3f}"}
    )
    if variable.get("regex"):
        values = [v for v in values if re.search(variable["regex"], v)]
    sort = int(variable.get("sort") or 0)
    if sort in (1, 2):  # alphabetical asc / desc
        values = sorted(values, reverse=sort == 2)
    elif sort in (3, 4):  # numerical asc / desc
        values = sorted(values, key=lambda v: float(re.search(r"-?\d+(\.\d+)?", v)[0]), reverse=sort == 4)
    elif sort in (5, 6):  # alphabetical, case-insensitive
        values = sorted(values, key=str.lower, reverse=sort == 6)
    return values


def options(variable: dict[str, Any], api: str, start: float, end: float) -> list[str]:
    """Every value a variable offers (without All)."""
    if variable["type"] == "custom":
        return custom_options(variable["query"])
    if variable["type"] == "query":
        return query_options(variable, api, start, end)
    raise ValueError(f"variable {variable['name']}: type {variable['type']!r} is not expanded here")


def format_variable(variable: dict[str, Any], selected: list[str] | str, all_options: list[str]) -> str:
    """The text Grafana's Prometheus data source puts in place of ``$name`` for a selection.

    ``selected`` is a list of values, or :data:`ALL` for the "All" option.
    """
    if selected == ALL or selected == [ALL]:
        if not variable.get("includeAll"):
            raise ValueError(f"variable {variable['name']} has no All option")
        if variable.get("allValue"):
            return variable["allValue"]  # a custom all value is never escaped
        selected = list(all_options)
    values = [selected] if isinstance(selected, str) else list(selected)
    if not variable.get("multi") and not variable.get("includeAll"):
        if len(values) != 1:
            raise ValueError(f"variable {variable['name']} takes one value, not {values}")
        return plain_escape(values[0])
    escaped = [regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


# --- 4. the query ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """One panel query as Grafana sends it to Prometheus."""

    panel: str
    ref_id: str
    expr: str
    start: float
    end: float
    step_s: float
    instant: bool
    legend_format: str


def builtins(iv: Intervals, range_ms: int) -> dict[str, str]:
    """Grafana's global variables for a query, longest name first (``$__interval_ms`` before ``$__interval``)."""
    range_s = round(range_ms / 1000)
    return {
        "__interval_ms": str(iv.step_ms),
        "__interval": short_duration(iv.step_ms),
        "__rate_interval_ms": str(iv.rate_interval_ms),
        "__rate_interval": go_duration(iv.rate_interval_ms),
        "__range_ms": str(range_ms),
        "__range_s": str(range_s),
        "__range": f"{range_s}s",
    }


def interpolate(expr: str, values: dict[str, str]) -> str:
    """Put each variable's text in place of ``$name``/``${name}``/``[[name]]``; unknown names fail."""

    def replace(match: re.Match[str]) -> str:
        name = match[1] or match[2] or match[3]
        if name not in values:
            raise KeyError(f"${name} is neither a dashboard variable nor a Grafana global variable: {expr}")
        return values[name]

    return VARIABLE.sub(replace, expr)


def expand(
    panel: dict[str, Any],
    target: dict[str, Any],
    variables: dict[str, str],
    datasources: dict[str, Datasource],
    start: float,
    end: float,
    dashboard_px: int = DASHBOARD_WIDTH_PX,
) -> Query:
    """One target of one panel, expanded for the range ``start``–``end`` (epoch seconds).

    ``variables`` maps each dashboard variable's name to its formatted text
    (:func:`format_variable`); the global variables are computed here.
    """
    ds = datasources[(target.get("datasource") or panel["datasource"])["uid"]]
    range_ms = round((end - start) * 1000)
    iv = intervals(panel, ds, range_ms, dashboard_px)
    expr = interpolate(target["expr"], {**builtins(iv, range_ms), **variables})
    step_s = iv.step_ms / 1000
    instant = bool(target.get("instant")) and not target.get("range", False)
    return Query(
        panel=panel["title"],
        ref_id=target["refId"],
        expr=expr,
        start=math.floor(start / step_s) * step_s,
        end=math.floor(end / step_s) * step_s,
        step_s=step_s,
        instant=instant,
        legend_format=target.get("legendFormat") or "",
    )


def run(api: str, query: Query) -> list[dict[str, Any]]:
    """The query's series from Prometheus: a range query, plus the instant one Grafana sends for instant targets."""
    data = prometheus_get(
        api,
        "/query_range",
        {"query": query.expr, "start": f"{query.start:.3f}", "end": f"{query.end:.3f}", "step": query.step_s},
    )
    series = data["result"]
    if query.instant:
        series = (
            series
            + prometheus_get(api, "/query", {"query": query.expr, "time": f"{query.end:.3f}"})["result"]
        )
    return series


def has_data(series: list[dict[str, Any]]) -> bool:
    """At least one real, non-zero sample (a flat zero line is a panel showing nothing happened)."""
    for s in series:
        for _, value in s.get("values") or [s["value"]]:
            v = float(value)
            if v != 0 and not math.isnan(v):
                return True
    return False


def legend_labels(legend_format: str) -> list[str]:
    """The labels a ``legendFormat`` names (``{{method}} {{name}}`` → ``["method", "name"]``)."""
    return LEGEND_LABEL.findall(legend_format)


def missing_legend_labels(query: Query, series: list[dict[str, Any]]) -> list[str]:
    """Each ``{{label}}`` of the legend that some returned series does not carry."""
    out = []
    for label in legend_labels(query.legend_format):
        lacking = [s["metric"] for s in series if label not in s["metric"]]
        if lacking:
            out.append(
                f"{query.panel} [{query.ref_id}]: legend names {{{{{label}}}}}, absent from {lacking[:3]}"
            )
    return out
