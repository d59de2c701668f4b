"""Malformed input everywhere loadstack reads it: every one is exit status 2 with a message naming the
file, field, variable or flag, never a traceback, never a process left behind, never a packet sent.

Inputs are generated with hypothesis (derandomized, so a run is repeatable) from valid profiles,
chains, SLO files and results by putting a wrong value into one field, or as files that are not
documents at all; environment variables and flags get values outside what they accept.  They go
through the real CLI in-process (``loadstack.cli.main``: an exception fails the test with its
traceback) and a handful through ``python -m loadstack``.  A local TCP listener stands in for the
target and every backend: it must see no connection, since all of this is refused before any load.
Counts per category are printed at the end (``pytest -s``): inputs tried, clean errors, tracebacks.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadstack import configfile, limits
from loadstack import settings as loadstack_settings
from loadstack.cli import main
from tests.helpers import ROOT, loadstack, processes_with_env

TRIED: Counter[str] = Counter()
CLEAN: Counter[str] = Counter()
SETTINGS = settings(
    max_examples=25, deadline=None, database=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
LOCUSTFILE = str(ROOT / "load-testing/locustfiles/http_users.py")


# -- the stand-in for "elsewhere", and the checks every input goes through --------------------------
class Listener:
    """A TCP port on 127.0.0.1 that counts connections (read from the accept queue, so it needs no
    thread: the test process may be gevent-patched by an earlier import of Locust)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen = 0

    def connections(self) -> int:
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, OSError):
                return self.seen
            conn.close()
            self.seen += 1

    def backends(self) -> dict[str, str]:
        """Every backend variable pointed at the listener: a connection anywhere is counted."""
        return {
            "LOCUST_HOST": self.url,
            "LOADSTACK_POSTGRES_DSN": f"postgresql://u@127.0.0.1:{self.port}/db",
            "LOADSTACK_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{self.port}//",
            "LOADSTACK_REDIS_URL": f"redis://127.0.0.1:{self.port}/0",
            "LOADSTACK_RABBITMQ_MANAGEMENT_URL": f"http://127.0.0.1:{self.port}",
            "LOADSTACK_RUN_MODE": "native",
        }


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    sink = Listener()
    with environment(sink.backends()):
        yield sink
    sink.sock.close()


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    yield
    lines = [f"{k}: {TRIED[k]} tried, {CLEAN[k]} clean errors" for k in sorted(TRIED)]
    print(
        f"\nbad inputs: {sum(TRIED.values())} tried, {sum(CLEAN.values())} clean errors, 0 tracebacks\n  "
        + "\n  ".join(lines)
    )


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Variables set for the block (the CLI reads them through loadstack.settings, refreshed here)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    loadstack_settings.current.cache_clear()  # read again on first use (a bad value raises there)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        loadstack_settings.current.cache_clear()


def children() -> set[int]:
    """Live child processes of this test process."""
    me, found = str(os.getpid()), set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                status = (entry / "status").read_text()
                fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
                if fields.get("PPid", "").strip() == me and not fields.get("State", "").startswith("Z"):
                    found.add(int(entry.name))
    return found


def cli(*argv: str) -> tuple[int, str]:
    """The real CLI in-process; argparse's own errors (SystemExit) are exit statuses too."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        configfile.set_max_input_mb(None)  # a --max-input-mb flag lasts one command
    return code, err.getvalue() + out.getvalue()


def refused(category: str, sink: Listener, argv: list[str], *expected: str, run_id: str | None = None) -> str:
    """Run ``argv``; assert a clean exit 2 naming ``expected``, nothing left running, nothing sent."""
    TRIED[category] += 1
    before = children()
    code, output = cli(*argv)
    assert code == 2, (argv, output)
    assert "Traceback" not in output, output
    for text in expected:
        assert text in output, (text, output)
    assert children() <= before, "a process was left behind"
    if run_id is not None:
        assert processes_with_env("LOADSTACK_RUN_ID", run_id) == []
    assert sink.connections() == 0, f"{argv}: something connected to the listener"
    CLEAN[category] += 1
    return output


def put(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def field_name(path: tuple[Any, ...]) -> str:
    return configfile.field_path(path)


def rejects(convert: Callable[[Any], Any]) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        try:
            convert(value)
        except ValueError:
            return True
        return False

    return check


# -- wrong values, by what a field holds ----------------------------------------------------------
TEXT = st.text(alphabet="abcxyz !%-", min_size=1, max_size=8)
NOT_FINITE = st.sampled_from([math.inf, -math.inf, math.nan])
NOT_A_COUNT = st.one_of(
    st.booleans(), TEXT, NOT_FINITE, st.lists(st.integers(), max_size=2),
    st.floats(min_value=0.01, max_value=1e6).filter(lambda f: not f.is_integer()),
    st.integers(min_value=limits.MAX_USERS + 1, max_value=10**30), st.integers(max_value=0),
)  # fmt: skip
NOT_A_RATE = st.one_of(
    st.booleans(), TEXT, NOT_FINITE, st.integers(max_value=0), st.floats(max_value=0, allow_nan=False),
    st.floats(min_value=limits.MAX_SPAWN_RATE * 1.01, allow_infinity=False), st.lists(st.integers(), max_size=2),
)  # fmt: skip
NOT_A_SHARE = st.one_of(
    st.booleans(), TEXT, NOT_FINITE, st.floats(min_value=1.001, allow_infinity=False),
    st.floats(max_value=-0.001, allow_infinity=False),
)  # fmt: skip
NOT_A_DURATION = st.one_of(
    st.booleans(), NOT_FINITE, st.sampled_from(["5 minutes", "1x", "99999999h", "-5s", "", "1h1h", "nan", ".inf"]),
    st.floats(min_value=31 * 86400, max_value=1e300), st.integers(min_value=31 * 86400, max_value=10**40),
    st.lists(st.integers(), max_size=2), st.integers(max_value=-1),
)  # fmt: skip
NOT_AN_ARRIVAL_RATE = st.one_of(
    st.booleans(), NOT_FINITE, st.integers(max_value=0), st.sampled_from(["fast", "10/d", "-5/s", "1e400/s", "/s", ""]),
    st.floats(min_value=limits.MAX_RATE * 1.01, allow_infinity=False), st.lists(st.integers(), max_size=2),
)  # fmt: skip
TOO_MANY_WORKERS = st.integers(min_value=limits.worker_limit() + 1, max_value=limits.MAX_WORKERS)


# -- profiles ------------------------------------------------------------------------------------
BASE_PROFILE: dict[str, Any] = {
    "name": "bad",
    "description": "generated bad input",
    "locustfile": LOCUSTFILE,
    "users": 2,
    "spawn_rate": 2,
    "run_time": "5s",
    "warmup": 0,
    "stages": [{"duration": "2s", "users": 2, "spawn_rate": 2}],
    "user_classes": {"AuthUser": 1},
    "wait_time": {"min": 0.1, "max": 0.2},
    "sample_interval": 5,
    "seed": {"customers": 3},
    "thresholds": [{"target": "total", "p95_ms_max": 500, "error_rate_max": 0.5, "grace": "1s"}],
}
BREAKPOINT = {
    "start_users": 1, "step_users": 1, "step_duration": "2s", "max_users": 3, "spawn_rate": 1,
    "stop_when": {"error_rate_max": 0.5},
}  # fmt: skip
PROFILE_FIELDS: list[tuple[tuple[Any, ...], Any]] = [
    (("users",), NOT_A_COUNT),
    (("workers",), st.one_of(NOT_A_COUNT.filter(lambda v: v is not None), TOO_MANY_WORKERS)),
    (("spawn_rate",), NOT_A_RATE),
    (("run_time",), NOT_A_DURATION),
    (("warmup",), NOT_A_DURATION),
    (("stages", 0, "users"), NOT_A_COUNT.filter(lambda v: v != 0)),
    (("stages", 0, "spawn_rate"), NOT_A_RATE),
    (("stages", 0, "duration"), NOT_A_DURATION),
    (("user_classes", "AuthUser"), st.one_of(st.booleans(), TEXT, NOT_FINITE, st.floats(max_value=-0.1))),
    (("wait_time", "max"), NOT_A_DURATION),
    (("sample_interval",), NOT_A_DURATION),
    (("seed", "customers"), NOT_A_COUNT),
    (("thresholds", 0, "p95_ms_max"), st.one_of(st.booleans(), TEXT, NOT_FINITE, st.floats(max_value=0))),
    (("thresholds", 0, "error_rate_max"), NOT_A_SHARE),
    (("thresholds", 0, "grace"), NOT_A_DURATION),
    (("thresholds", 0, "abort_on_breach"), st.one_of(TEXT, st.integers(2, 9), NOT_FINITE)),
    (("breakpoint", "max_users"), NOT_A_COUNT),
    (("breakpoint", "step_duration"), NOT_A_DURATION),
    (("breakpoint", "stop_when", "p95_ms_max"), st.one_of(st.booleans(), NOT_FINITE, TEXT)),
    (("tags",), st.lists(st.just("t"), min_size=limits.MAX_ITEMS + 1, max_size=limits.MAX_ITEMS + 1)),
    # the workload model: arrival rates, pools, budgets, data feeders, sustained gates
    (("rate",), NOT_AN_ARRIVAL_RATE),
    (("max_users",), NOT_A_COUNT),
    (("iterations",), st.one_of(st.booleans(), TEXT, NOT_FINITE, st.integers(max_value=0), st.just(1.5))),
    (("data", "rows", "mode"), st.one_of(TEXT, st.booleans(), st.integers())),
    (("data", "rows", "csv"), st.one_of(st.just(""), st.booleans(), st.lists(st.integers(), max_size=2))),
    (("thresholds", 0, "for"), NOT_A_DURATION.filter(lambda v: v != 0)),
    (
        ("thresholds", 0, "percentiles_ms_max"),
        st.sampled_from([{"p200": 5}, {"p95": -1}, {"x": 5}, {"p50": "fast"}]),
    ),
    (
        ("thresholds", 0, "dropped_iterations_max"),
        st.one_of(st.booleans(), TEXT, st.integers(max_value=-1), st.just(0.5)),
    ),
]


def profile_doc(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    base = copy.deepcopy(BASE_PROFILE)
    if path[0] == "breakpoint":
        base.pop("stages")
        base["breakpoint"] = BREAKPOINT
    if path[0] == "workers":
        base["workers"] = 1
    if path[0] in ("rate", "max_users"):  # an open model: a rate served by a pool of users
        base.pop("stages")
        base.update(rate="5/s", max_users=3)
    if path[0] == "data":
        base["data"] = {"rows": {"csv": "rows.csv", "mode": "unique"}}
    return put(base, path, value)


@settings(SETTINGS, max_examples=3 * len(PROFILE_FIELDS))  # about three wrong values per field
@given(field=st.sampled_from(PROFILE_FIELDS), data=st.data())
def test_profile_field_with_a_wrong_value_is_named_and_nothing_starts(
    tmp_path_factory: pytest.TempPathFactory, listener: Listener, field: Any, data: Any
) -> None:
    path, wrong = field
    doc = profile_doc(path, data.draw(wrong))
    folder = tmp_path_factory.mktemp("profile")
    source = folder / "bad.yml"
    source.write_text(yaml.safe_dump(doc, sort_keys=False))
    run_id = f"bad-{folder.name}"
    argv = ["run", "--profile", str(source), "--host", listener.url, "--run-id", run_id]
    argv += ["--results-dir", str(folder / "results")]
    refused("profile: wrong field value", listener, argv, "bad.yml:", field_name(path), run_id=run_id)
    assert not (folder / "results").exists(), "nothing is written for bad input"


def _alias_bomb(width: int, levels: int, where: str) -> str:
    lines = [f"a0: &a0 [{', '.join(['x'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\n{where}: *a{levels - 1}\n"


def _profile_text(**extra: str) -> str:
    lines = [f"{k}: {json.dumps(v)}" for k, v in BASE_PROFILE.items() if k not in extra]
    return "\n".join(lines) + "\n" + "".join(f"{k}: {v}\n" for k, v in extra.items())


FILE_CASES = st.one_of(
    # a key given twice: both lines are named
    st.sampled_from(["users", "run_time", "spawn_rate", "name"]).map(
        lambda key: (_profile_text() + f"{key}: 3\n", ("duplicate key (first at line", key))
    ),
    # aliases that expand beyond the budget, or into themselves
    st.tuples(st.integers(10, 40), st.integers(4, 6)).map(
        lambda wl: (_profile_text() + _alias_bomb(*wl, "tags"), ("aliases expand to more than",))
    ),
    st.just((_profile_text() + "x: &x [1, *x]\n", ("refers to its own anchor",))),
    # nesting beyond 64 levels, in flow and block style
    st.integers(65, 20000).map(lambda n: (_profile_text() + "tags: " + "[" * n + "]" * n + "\n", ("nested deeper than 64",))),
    st.integers(65, 300).map(
        lambda n: (_profile_text() + "env:\n" + "".join(" " * (2 * i + 2) + f"k{i}:\n" for i in range(n)) + " " * (2 * n + 2) + "v: 1\n",
                   ("nested deeper than 64",))
    ),
    # bytes that are not UTF-8 text
    st.binary(min_size=1, max_size=200).map(lambda b: (b"x" + b + b"\0", ("binary data", "NUL byte at byte offset"))),
    st.sampled_from([b"\xe9", b"\xff\xfe\xfd", b"\xc3\x28", b"\xed\xa0\x80"]).map(
        lambda bad: (_profile_text().encode() + b"description: caf" + bad + b"\n", ("not UTF-8 text (byte offset",))
    ),
    st.just((_profile_text().encode("utf-16"), ("UTF-16",))),
    # YAML that is not a profile, and a YAML error
    st.sampled_from(["- a\n- b\n", "just text\n", "42\n"]).map(lambda t: (t, ("expected a mapping",))),
    st.sampled_from(["users: [1, 2\n", "a: b: c\n", "\t- x\n", "users: \x07\n"]).map(lambda t: (_profile_text() + t, ("invalid YAML",))),
)  # fmt: skip


@SETTINGS
@given(case=FILE_CASES)
def test_profile_file_that_is_not_a_usable_document_is_refused(
    tmp_path_factory: pytest.TempPathFactory, listener: Listener, case: tuple[Any, tuple[str, ...]]
) -> None:
    content, expected = case
    folder = tmp_path_factory.mktemp("file")
    source = folder / "weird.yml"
    source.write_bytes(content if isinstance(content, bytes) else content.encode())
    run_id = f"bad-{folder.name}"
    argv = ["run", "--profile", str(source), "--host", listener.url, "--run-id", run_id]
    refused(
        "profile: unusable file",
        listener,
        [*argv, "--results-dir", str(folder / "r")],
        "weird.yml",
        *expected,
    )


def test_file_size_cap_and_its_flag(tmp_path: Path, listener: Listener) -> None:
    source = tmp_path / "big.yml"
    source.write_text(_profile_text() + "# padding\n" * 120_000)  # about 1.2 MB
    refused("profile: unusable file", listener, ["profile", "validate", str(source), "--max-input-mb", "1"],
            "big.yml", "more than the 1 MB limit", "--max-input-mb")  # fmt: skip
    with environment({"LOADSTACK_MAX_INPUT_MB": "0.5"}):
        refused("profile: unusable file", listener, ["profile", "validate", str(source)], "0.5 MB limit")
    code, output = cli("profile", "validate", str(source))  # the default, 5 MB, reads it
    assert code == 0, output
    values = tmp_path / "values.yml"
    values.write_text(_profile_text() + "tags:\n" + "  - t\n" * 100_001)
    refused(
        "profile: unusable file", listener, ["profile", "validate", str(values)], "more than 100000 values"
    )


# -- SLO files -----------------------------------------------------------------------------------
BASE_SLO: dict[str, Any] = {
    "description": "generated",
    "thresholds": [
        {"target": {"name": "/api/*"}, "p95_ms_max": 500, "success_rate_min": 0.9},
        {"target": "total", "rps_min": 1, "abort_on_breach": True, "grace": "2s"},
    ],
}
SLO_FIELDS: list[tuple[tuple[Any, ...], Any]] = [
    (("thresholds", 0, "p95_ms_max"), st.one_of(st.booleans(), TEXT, NOT_FINITE, st.floats(max_value=0), st.floats(min_value=1e9, allow_infinity=False))),
    (("thresholds", 0, "success_rate_min"), NOT_A_SHARE),
    (("thresholds", 1, "rps_min"), st.one_of(st.booleans(), TEXT, NOT_FINITE, st.floats(max_value=-0.1))),
    (("thresholds", 1, "grace"), NOT_A_DURATION),
    (("thresholds", 1, "abort_on_breach"), st.one_of(TEXT, st.integers(2, 9), NOT_FINITE)),
    (("thresholds", 0, "target", "name"), st.one_of(st.just(""), st.integers(), st.text(min_size=300, max_size=400))),
    (("thresholds", 0, "target", "total"), st.one_of(TEXT, st.integers(2, 9))),
]  # fmt: skip


@settings(SETTINGS, max_examples=20)
@given(field=st.sampled_from(SLO_FIELDS), data=st.data())
def test_slo_file_field_with_a_wrong_value_is_named(
    tmp_path_factory: pytest.TempPathFactory, listener: Listener, field: Any, data: Any
) -> None:
    path, wrong = field
    folder = tmp_path_factory.mktemp("slo")
    slo = folder / "gates.yml"
    slo.write_text(yaml.safe_dump(put(BASE_SLO, path, data.draw(wrong)), sort_keys=False))
    profile = folder / "p.yml"
    profile.write_text(
        yaml.safe_dump(
            {
                **{
                    k: BASE_PROFILE[k]
                    for k in ("name", "description", "locustfile", "users", "spawn_rate", "run_time")
                },
                "slo": "gates.yml",
            }
        )
    )
    refused(
        "SLO file: wrong field value",
        listener,
        ["profile", "validate", str(profile)],
        "gates.yml:",
        field_name(path),
    )


# -- chains --------------------------------------------------------------------------------------
BASE_CHAIN: dict[str, Any] = {
    "name": "bad_chain",
    "weight": 1,
    "vars": {"greeting": "hi"},
    "steps": [
        {
            "name": "first",
            "http": {"method": "POST", "path": "/api/v1/things", "json": {"a": 1}, "timeout": "5s"},
            "expect": {"status": 201},
            "save": {"id": {"json": "$.id", "row": 0}},
            "repeat": {"times": 2},
        },
        {"name": "wait", "await": {"http": {"path": "/api/v1/things"}, "until": "true", "timeout": "2s", "backoff": 2}},
        {"name": "pause", "sleep": "10ms"},
    ],
}  # fmt: skip
HUGE_TEMPLATES = st.one_of(
    st.integers(10_001, 10**6).map(lambda n: f"{{{{ 2 ** {n} }}}}"),
    st.integers(7, 12).map(lambda k: f"{{{{ 'x' * 10**{k} }}}}"),
    st.integers(10_001, 10**9).map(lambda n: f"{{{{ 'x' | center({n}) }}}}"),
    st.integers(10_001, 10**9).map(lambda n: f"a{{{{ '%{n}d' % 1 }}}}"),
    st.sampled_from([
        "{% for i in range(10) %}{% for j in range(10) %}{% endfor %}{% endfor %}",
        "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
        "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}",
        "{{ [1, 2].append(3) }}",
        "{{ lipsum(10**6) }}",
        "{{ '{:>999999}'.format(1) }}",
    ]),
)  # fmt: skip
CHAIN_FIELDS: list[tuple[tuple[Any, ...], Any, str]] = [
    (("weight",), st.one_of(st.booleans(), TEXT, NOT_FINITE, st.floats(max_value=0), st.floats(min_value=1e7, allow_infinity=False)), "weight"),
    (("steps", 0, "http", "timeout"), NOT_A_DURATION, "steps[0].http.timeout"),
    (("steps", 0, "expect", "status"), st.one_of(st.booleans(), TEXT, st.integers(1000, 10**9), st.integers(max_value=0)), "steps[0].expect.status"),
    (("steps", 0, "repeat", "times"), st.one_of(st.booleans(), TEXT, st.integers(10_001, 10**12), st.integers(max_value=0)), "steps[0].repeat.times"),
    (("steps", 0, "save", "id", "row"), st.one_of(st.integers(max_value=-1), st.integers(10**6 + 1, 10**15)), "steps[0].save.id"),
    (("steps", 1, "await", "backoff"), st.one_of(NOT_FINITE, st.floats(min_value=101, allow_infinity=False), st.floats(max_value=0.99)), "steps[1].await"),
    (("steps", 1, "await", "timeout"), NOT_A_DURATION, "steps[1].await"),
    (("steps", 2, "sleep"), NOT_A_DURATION, "steps[2]"),
    (("steps", 0, "http", "path"), HUGE_TEMPLATES.map(lambda t: "/x/" + t), "steps[0].http.path"),
    (("steps", 0, "http", "json", "a"), HUGE_TEMPLATES, "steps[0].http.json.a"),
    (("vars", "greeting"), HUGE_TEMPLATES, "vars.greeting"),
    (("steps", 1, "await", "until"), HUGE_TEMPLATES.map(lambda t: t.replace("{{", "").replace("}}", "") if t.startswith("{{") and t.count("{{") == 1 else "2 ** 20000 > 1"), "steps[1].await.until"),
]  # fmt: skip


@settings(SETTINGS, max_examples=40)
@given(field=st.sampled_from(CHAIN_FIELDS), data=st.data())
def test_chain_field_with_a_wrong_value_is_named(
    tmp_path_factory: pytest.TempPathFactory, listener: Listener, field: Any, data: Any
) -> None:
    path, wrong, named = field
    folder = tmp_path_factory.mktemp("chain")
    source = folder / "bad_chain.yml"
    source.write_text(yaml.safe_dump(put(BASE_CHAIN, path, data.draw(wrong)), sort_keys=False))
    refused("chain: wrong field value", listener, ["chain", "validate", str(source)], "bad_chain.yml:", named)


@settings(SETTINGS, max_examples=10)
@given(case=st.one_of(
    st.sampled_from(["name", "steps", "vars"]).map(lambda key: (yaml.safe_dump(BASE_CHAIN, sort_keys=False) + f"{key}: x\n", ("duplicate key", key))),
    st.tuples(st.integers(10, 40), st.integers(4, 6)).map(
        lambda wl: (yaml.safe_dump(BASE_CHAIN, sort_keys=False) + _alias_bomb(*wl, "description"), ("aliases expand",))),
    st.binary(min_size=1, max_size=50).map(lambda b: (b"x\0" + b, ("binary data",))),
    st.just((yaml.safe_dump(BASE_CHAIN, sort_keys=False) + "steps_extra: [" + "{a: " * 100 + "1" + "}" * 100 + "]\n", ("nested deeper",))),
))  # fmt: skip
def test_chain_file_that_is_not_a_usable_document_is_refused(
    tmp_path_factory: pytest.TempPathFactory, listener: Listener, case: tuple[str | bytes, tuple[str, ...]]
) -> None:
    content, expected = case
    source = tmp_path_factory.mktemp("chainfile") / "weird_chain.yml"
    source.write_bytes(content if isinstance(content, bytes) else content.encode())
    refused(
        "chain: unusable file", listener, ["chain", "validate", str(source)], "weird_chain.yml", *expected
    )


# -- summaries and history (report, compare) ---------------------------------------------------------
ROW = {
    "type": "GET", "name": "/api/v1/things", "count": 40, "failures": 1, "failure_rate": 0.025, "rps": 4.0,
    "avg_ms": 10.0, "min_ms": 2.0, "max_ms": 50.0, "p50_ms": 9, "p90_ms": 20, "p95_ms": 30, "p99_ms": 50,
    "avg_bytes": 100.0, "histogram": {"9": 20, "20": 16, "30": 2, "50": 2},
}  # fmt: skip
TOTALS = {k: v for k, v in ROW.items() if k not in ("type", "name", "histogram")}


def summary_doc(run_id: str) -> dict[str, Any]:
    return {
        "schema": 1, "run_id": run_id, "profile": "p", "start": "2026-01-01T00:00:00+00:00",
        "totals": TOTALS, "requests": [ROW], "errors": [], "verdict": "pass",
        "gates": [{"gate": 0, "target": "total", "metric": "p95_ms_max", "threshold": 500.0, "actual": 30.0, "status": "pass"}],
    }  # fmt: skip


SUMMARY_FIELDS: list[tuple[tuple[Any, ...], Any, str]] = [
    (("totals", "count"), st.one_of(st.booleans(), TEXT, st.integers(max_value=-1), st.floats(0.5, 9.5).filter(lambda f: not f.is_integer()), st.none()), "totals.count"),
    (("totals", "p95_ms"), st.one_of(st.booleans(), TEXT, st.floats(max_value=-0.1), st.none(), st.lists(st.integers(), max_size=1)), "totals.p95_ms"),
    (("totals", "failure_rate"), st.one_of(st.floats(1.01, 1e6), TEXT, st.booleans()), "totals.failure_rate"),
    (("totals", "failures"), st.integers(41, 10**6), "totals: failures"),
    (("totals",), st.one_of(TEXT, st.lists(st.integers(), max_size=2), st.none()), "totals"),
    (("requests",), st.one_of(TEXT, st.dictionaries(TEXT, st.integers(), max_size=2), st.none()), "requests"),
    (("requests", 0), st.one_of(TEXT, st.integers(), st.none()), "requests[0]"),
    (("requests", 0, "name"), st.one_of(st.integers(), st.none(), st.lists(st.integers(), max_size=1)), "requests[0].name"),
    (("requests", 0, "histogram"), st.one_of(
        st.dictionaries(st.sampled_from(["abc", "inf", "-5", "nan", ""]), st.integers(0, 9), min_size=1, max_size=2),
        st.dictionaries(st.sampled_from(["1", "2"]), st.one_of(st.integers(max_value=-1), TEXT, st.booleans()), min_size=1, max_size=2),
        st.lists(st.integers(), max_size=2), TEXT), "requests[0].histogram"),
    (("run_id",), st.one_of(st.sampled_from(["../../etc", "a/b", "..", "", ".hidden", "x" * 65]), st.integers(), st.none()), "run_id"),
    (("gates", 0, "status"), st.one_of(st.sampled_from(['"><script>alert(1)</script>', "PASS", ""]), st.integers()), "gates[0].status"),
    (("profile",), st.one_of(st.integers(), st.none(), st.lists(st.integers(), max_size=1)), "profile"),
]  # fmt: skip


def results_folder(root: Path) -> None:
    for run_id in ("base", "cur"):
        (root / run_id).mkdir(parents=True)
        (root / run_id / "summary.json").write_text(json.dumps(summary_doc(run_id)))


def written(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@settings(SETTINGS, max_examples=40)
@given(field=st.sampled_from(SUMMARY_FIELDS), command=st.sampled_from(["compare", "report"]), data=st.data())
def test_summary_with_a_wrong_field_is_named_and_nothing_is_written(
    tmp_path_factory: pytest.TempPathFactory, listener: Listener, field: Any, command: str, data: Any
) -> None:
    path, wrong, named = field
    root = tmp_path_factory.mktemp("results")
    results_folder(root)
    (root / "cur" / "summary.json").write_text(json.dumps(put(summary_doc("cur"), path, data.draw(wrong))))
    before = written(root)
    argv = ["compare", "cur", "--baseline", "base"] if command == "compare" else ["report", "base", "cur"]
    refused(f"summary.json: wrong field ({command})", listener, [*argv, "--results-dir", str(root)],
            str(Path("cur") / "summary.json"), named)  # fmt: skip
    assert written(root) == before, "nothing is written for bad input"


@settings(SETTINGS, max_examples=15)
@given(raw=st.one_of(
    st.binary(min_size=1, max_size=100).map(lambda b: b + b"\0"),
    st.sampled_from([b"", b"{", b"[1, 2]", b'"text"', b"{" * 100000, b'{"run_id": "cur"', b"\xff\xfe\xfd"]),
    st.text(alphabet="{}[]:,ab ", min_size=1, max_size=30).map(str.encode),
).filter(lambda raw: not _json_object(raw)))  # fmt: skip
def test_summary_that_is_not_json_is_refused(
    tmp_path_factory: pytest.TempPathFactory, listener: Listener, raw: bytes
) -> None:
    root = tmp_path_factory.mktemp("rawsummary")
    results_folder(root)
    (root / "cur" / "summary.json").write_bytes(raw)
    before = written(root)
    refused("summary.json: not a JSON object", listener,
            ["compare", "cur", "--baseline", "base", "--results-dir", str(root)], str(Path("cur") / "summary.json"))  # fmt: skip
    assert written(root) == before


def _json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, RecursionError):
        return False


HISTORY_LINES = st.one_of(
    st.sampled_from(["../../x", "a/b", "..", ""]).map(lambda r: (json.dumps({"run_id": r, "verdict": "pass"}), "run_id")),
    st.one_of(st.integers(), st.none(), st.lists(st.integers(), max_size=1)).map(lambda r: (json.dumps({"run_id": r, "verdict": "pass"}), "run_id")),
    st.one_of(st.integers(), st.lists(st.integers(), max_size=1)).map(lambda v: (json.dumps({"run_id": "base", "verdict": v}), "verdict")),
    st.sampled_from(["[1, 2]", '"text"', "{not json", "42"]).map(lambda line: (line, "history.jsonl:1")),
)  # fmt: skip


@settings(SETTINGS, max_examples=15)
@given(case=HISTORY_LINES, command=st.sampled_from(["compare", "report"]))
def test_history_line_with_a_wrong_field_is_named(
    tmp_path_factory: pytest.TempPathFactory, listener: Listener, case: tuple[str, str], command: str
) -> None:
    line, named = case
    root = tmp_path_factory.mktemp("history")
    results_folder(root)
    (root / "history.jsonl").write_text(
        line + "\n" + json.dumps({"run_id": "base", "verdict": "pass"}) + "\n"
    )
    before = written(root)
    argv = ["compare", "cur"] if command == "compare" else ["report"]
    refused(f"history.jsonl: wrong line ({command})", listener, [*argv, "--results-dir", str(root)],
            "history.jsonl:1", named)  # fmt: skip
    assert written(root) == before


def test_compare_builds_no_path_from_file_contents(tmp_path: Path, listener: Listener) -> None:
    """A torn last history line is skipped (a crash mid-append); ids become file names only as names."""
    results_folder(tmp_path)
    (tmp_path / "history.jsonl").write_text(
        json.dumps({"run_id": "base", "verdict": "pass", "profile": "p"}) + '\n{"run_'
    )
    doc = summary_doc("cur")
    doc["run_id"] = "cur"
    (tmp_path / "cur" / "summary.json").write_text(json.dumps(doc))
    code, output = cli("compare", "cur", "--results-dir", str(tmp_path))
    assert code == 0, output
    assert (tmp_path / "cur" / "compare-base.json").exists() and (
        tmp_path / "cur" / "compare-base.html"
    ).exists()
    (tmp_path / "latest").symlink_to("../../outside")
    refused("summary.json: wrong field (compare)", listener, ["compare", "latest", "--results-dir", str(tmp_path)],
            "latest: points to '../../outside'")  # fmt: skip
    for run_id in ("../x", "a/b", "..", ".hidden"):
        refused("CLI flag: absurd value", listener, ["compare", "cur", "--baseline", run_id, "--results-dir", str(tmp_path)],
                "--baseline", "invalid run id")  # fmt: skip
        refused(
            "CLI flag: absurd value",
            listener,
            ["report", run_id, "--results-dir", str(tmp_path)],
            "invalid run id",
        )


def test_report_escapes_every_text_and_attribute(tmp_path: Path) -> None:
    results_folder(tmp_path)
    doc = summary_doc("cur")
    doc["requests"][0]["name"] = '/x"><script>alert(1)</script>'
    doc["profile"] = "<b>p</b>"
    (tmp_path / "cur" / "summary.json").write_text(json.dumps(doc))
    code, output = cli("report", "base", "cur", "--results-dir", str(tmp_path))
    assert code == 0, output
    html = (tmp_path / "report.html").read_text()
    assert "<script>" not in html and "<b>p</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# -- environment variables ---------------------------------------------------------------------------
def _variables() -> list[tuple[str, Any, tuple[str, ...]]]:
    count = st.one_of(TEXT, st.sampled_from(["1e20", "true", "1.5", "nan", "inf", "0", "-3", "99999999999"]))
    rate = st.one_of(TEXT, st.sampled_from(["nan", "inf", "-inf", "0", "-1", "1e9", "true"]))
    duration = st.one_of(
        st.sampled_from(["inf", "nan", ".inf", "5x", "-5s", "99999999h", "1e400", "5 minutes"]),
        TEXT.filter(rejects(_duration)),
    )
    flag = st.sampled_from(["maybe", "yes please", "2", "-1", "truthy"])
    port = st.one_of(st.sampled_from(["0", "70000", "-1", "http", "1.5"]), st.integers(65536, 10**9).map(str))
    megabytes = st.sampled_from(["0", "-1", "inf", "nan", "abc", "2000"])
    both, run = ("run", "show"), ("run",)
    return [
        ("LOADSTACK_USERS", count, both), ("LOCUST_USERS", count, both), ("LOADSTACK_WORKERS", count, both),
        # valid for the profile, too many for this machine: refused where workers are started
        ("LOADSTACK_WORKERS", st.integers(limits.worker_limit() + 1, limits.MAX_WORKERS).map(str), run),
        ("LOADSTACK_SPAWN_RATE", rate, both), ("LOCUST_SPAWN_RATE", rate, both),
        ("LOADSTACK_RUN_TIME", duration, both), ("LOCUST_RUN_TIME", duration, both), ("LOADSTACK_JWT_TTL", duration, both),
        ("LOADSTACK_ALLOW_REMOTE", flag, both), ("LOADSTACK_ALLOW_MANY_WORKERS", flag, both), ("LOADSTACK_SKIP_SEED", flag, both),
        ("LOADSTACK_METRICS_PORT", port, both), ("LOADSTACK_WEB_PORT", port, both), ("LOADSTACK_GRAFANA_PORT", port, both),
        ("LOADSTACK_MAX_INPUT_MB", megabytes, both),
        ("LOADSTACK_PROGRESS_INTERVAL", st.sampled_from(["nan", "inf", "0", "-1", "x", "true"]), both),
        ("LOADSTACK_PG_POOL_SIZE", st.sampled_from(["0", "1001", "many"]), both),
        ("LOADSTACK_JWT_CLAIMS", st.sampled_from(["{bad", "[1]", "1"]), both),
        ("AUTH_MODE", st.sampled_from(["bogus", "OAUTH3"]), both), ("LOADSTACK_RUN_MODE", st.sampled_from(["fast", "kubernetes"]), both),
        ("LOADSTACK_DEMO_LATENCY_MS", st.sampled_from(["nan", "inf", "-1", "x"]), both),
    ]  # fmt: skip


def _duration(text: str) -> float:
    from loadstack.durations import parse_duration

    return parse_duration(text)


@settings(SETTINGS, max_examples=40)
@given(variable=st.sampled_from(_variables()), data=st.data())
def test_environment_variable_with_a_bad_value_is_named(
    tmp_path_factory: pytest.TempPathFactory, listener: Listener, variable: Any, data: Any
) -> None:
    name, values, commands = variable
    value, command = data.draw(values), data.draw(st.sampled_from(commands))
    folder = tmp_path_factory.mktemp("env")
    profile = folder / "ok.yml"
    profile.write_text(_profile_text())
    run_id = f"bad-{folder.name}"
    argv = (
        ["run", "--profile", str(profile), "--host", listener.url, "--run-id", run_id, "--results-dir", str(folder / "r")]
        if command == "run"
        else ["profile", "show", str(profile)]
    )  # fmt: skip
    with environment({name: value}):
        refused("environment variable", listener, argv, name, run_id=run_id if command == "run" else None)
    assert not (folder / "r").exists()


# -- command-line flags ---------------------------------------------------------------------------
def _flags(sink_port: int) -> list[tuple[list[str], str, Any]]:
    from loadstack import flags

    def bad(convert: Callable[[str], Any]) -> Any:
        candidates = st.one_of(
            st.integers(-(10**12), 10**12).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
            st.sampled_from(["inf", "nan", "-inf", "1e20", "true", "", "0x10", "1_000_000_000", "٣"]), TEXT,
        )  # fmt: skip
        return candidates.filter(rejects(lambda v: _argparse(convert, v)))

    profile = ["--profile", "smoke", "--host", f"http://127.0.0.1:{sink_port}"]
    amqp = ["--url", f"amqp://guest:guest@127.0.0.1:{sink_port}//"]
    return [
        (["run", *profile], "--users", bad(flags.USERS)),
        (["run", *profile], "--spawn-rate", bad(flags.SPAWN_RATE)),
        (["run", *profile], "--run-time", bad(flags.duration_flag)),
        (["run", *profile], "--workers", bad(flags.WORKERS)),
        (["run", *profile], "--max-input-mb", bad(flags.MEGABYTES)),
        (["ui", *profile], "--web-port", bad(flags.PORT)),
        (["master", "--profile", "smoke"], "--master-port", bad(flags.PORT)),
        (["master", "--profile", "smoke"], "--expect-workers", bad(flags.WORKERS)),
        (["worker", "--profile", "smoke"], "--master-port", bad(flags.PORT)),
        (["stack", "up"], "--workers", bad(flags.WORKERS)),
        (["inspect", "rabbitmq", "q", *amqp], "--count", bad(flags.int_in(1, 10_000))),
        (["inspect", "redis", "--url", f"redis://127.0.0.1:{sink_port}/0"], "--limit", bad(flags.int_in(1, 1_000_000))),
        (["report"], "--last", bad(flags.int_in(1, 10_000))),
        (["compare"], "--alpha", bad(flags.float_in(0, 1, lo_open=True))),
        (["compare"], "--p95-tolerance", bad(flags.float_in(0, 1000))),
        (["compare"], "--error-tolerance-pp", bad(flags.float_in(0, 100))),
        (["demo", "serve"], "--port", bad(flags.PORT)),
        (["demo", "serve"], "--latency-ms", bad(flags.float_in(0, 600_000))),
        (["k8s", "render", "--host", "http://10.0.0.5:8000", "--allow-remote"], "--spawn-rate", bad(flags.SPAWN_RATE)),
        (["k8s", "render", "--host", "http://10.0.0.5:8000", "--allow-remote"], "--run-time", bad(flags.duration_flag)),
        (["k8s", "render", "--host", "http://10.0.0.5:8000", "--allow-remote"], "--workers", bad(flags.WORKERS)),
        (["k8s", "render", "--host", "http://10.0.0.5:8000", "--allow-remote"], "--users", bad(flags.USERS)),
        (["profile", "validate", "smoke"], "--max-input-mb", bad(flags.MEGABYTES)),
    ]  # fmt: skip


def _argparse(convert: Callable[[str], Any], value: str) -> Any:
    import argparse

    try:
        return convert(value)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(str(exc)) from None


FLAGS = _flags(9)  # the strategies do not depend on the port; each test puts in its listener's


@settings(SETTINGS, max_examples=50)
@given(index=st.integers(0, len(FLAGS) - 1), data=st.data())
def test_flag_with_an_absurd_value_is_named(listener: Listener, index: int, data: Any) -> None:
    prefix, flag, values = _flags(listener.port)[index]
    value = data.draw(values)
    refused("CLI flag: absurd value", listener, [*prefix, f"{flag}={value}"], flag)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["inspect", "rabbitmq", "q" * 256], "at most 255 bytes"),
        (["inspect", "rabbitmq", "é" * 128], "256 bytes"),
        (["inspect", "rabbitmq", "q", "--offset", "junk"], "--offset"),
        (["inspect", "rabbitmq", "q", "--offset", "9" * 30], "--offset"),
        (["inspect", "rabbitmq", "q", "--url", "amqp://[::1"], "not an AMQP URL"),
        (["inspect", "rabbitmq", "q", "--queue-type", "lazy"], "--queue-type"),
        (["import", "har", "/dev/zero"], "not a regular file"),
        (["import", "openapi", "/dev/zero"], "not a regular file"),
        (["chain", "validate", "/dev/zero"], "not a regular file"),
        (["profile", "validate", "/"], "is a directory"),
        (["run", "--profile", "smoke", "--results-dir", "/dev/null"], "not a folder"),
        (["run", "--profile", "smoke", "--run-id", "../escape"], "invalid run id"),
        (["k8s", "fetch", "../x"], "invalid run id"),
        (["dashboard", "--output", "/dev/full"], "No space left on device"),
    ],
)
def test_other_absurd_arguments(listener: Listener, argv: list[str], expected: str) -> None:
    if argv[0] == "inspect" and "--url" not in argv:
        argv = [*argv, "--url", f"amqp://guest:guest@127.0.0.1:{listener.port}//"]
    if argv[0] == "run":
        argv = [*argv, "--host", listener.url]
    refused("CLI: other absurd arguments", listener, argv, expected)


def test_workers_above_four_per_cpu_need_the_override(tmp_path: Path, listener: Listener) -> None:
    profile = tmp_path / "many.yml"
    profile.write_text(_profile_text(workers=str(limits.worker_limit() + 1)))
    argv = ["run", "--profile", str(profile), "--host", listener.url, "--run-id", "bad-many"]
    refused("profile: wrong field value", listener, [*argv, "--results-dir", str(tmp_path / "r")],
            "many.yml:", "workers", "--allow-many-workers")  # fmt: skip
    code, output = cli("profile", "validate", str(profile))  # the file itself is fine: the machine decides
    assert code == 0, output


# -- the same through real processes -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("binary_profile", "binary data"),
        ("alias_bomb_profile", "aliases expand to more than"),
        ("users_env", "LOADSTACK_USERS"),
        ("huge_power_chain", "has more than 10000 bits"),
        ("corrupt_summary", "totals.count"),
        ("long_queue", "at most 255 bytes"),
    ],
)
def test_bad_input_in_a_real_process(tmp_path: Path, listener: Listener, case: str, expected: str) -> None:
    TRIED[f"subprocess: {case}"] += 1
    env = listener.backends()
    run = ["run", "--host", listener.url, "--run-id", f"bad-{case}", "--results-dir", str(tmp_path / "r")]
    if case == "binary_profile":
        (tmp_path / "p.yml").write_bytes(b"name: x\n\0\x01\x02")
        argv = [*run, "--profile", str(tmp_path / "p.yml")]
    elif case == "alias_bomb_profile":
        (tmp_path / "p.yml").write_text(_profile_text() + _alias_bomb(30, 6, "tags"))
        argv = [*run, "--profile", str(tmp_path / "p.yml")]
    elif case == "users_env":
        (tmp_path / "p.yml").write_text(_profile_text())
        argv, env = [*run, "--profile", str(tmp_path / "p.yml")], {**env, "LOADSTACK_USERS": "1e20"}
    elif case == "huge_power_chain":
        (tmp_path / "c.yml").write_text(
            yaml.safe_dump(put(BASE_CHAIN, ("vars", "greeting"), "{{ 2 ** 20000 }}"))
        )
        argv = ["chain", "validate", str(tmp_path / "c.yml")]
    elif case == "corrupt_summary":
        results_folder(tmp_path)
        (tmp_path / "cur" / "summary.json").write_text(
            json.dumps(put(summary_doc("cur"), ("totals", "count"), "many"))
        )
        argv = ["compare", "cur", "--baseline", "base", "--results-dir", str(tmp_path)]
    else:
        argv = ["inspect", "rabbitmq", "q" * 300, "--url", f"amqp://guest:guest@127.0.0.1:{listener.port}//"]
    result = loadstack(*argv, env=env, timeout=120)
    output = result.stderr + result.stdout
    assert result.returncode == 2, output
    assert "Traceback" not in output and expected in output, output
    assert processes_with_env("LOADSTACK_RUN_ID", f"bad-{case}") == []
    assert listener.connections() == 0
    assert not (tmp_path / "r").exists()
    CLEAN[f"subprocess: {case}"] += 1


def test_the_listener_counts_connections(listener: Listener) -> None:
    """The stand-in for "elsewhere" would notice: one connection is counted, then reset."""
    with socket.create_connection(("127.0.0.1", listener.port), timeout=2):
        pass
    assert listener.connections() == 1
    listener.seen = 0


# -- round 3: bounds everywhere (issue 27: findings 13-16 and the misreported inputs) -----------------
BIG = "9" * 5000  # beyond Python's 4300-digit limit for converting text to int


def _round3_case(case: str, tmp_path: Path, listener: Listener) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of one case; files it needs are written into ``tmp_path``."""
    run = ["run", "--host", listener.url, "--results-dir", str(tmp_path / "r")]
    profile = tmp_path / "p.yml"
    profile.write_text(_profile_text())
    if case == "run_id_newline":
        return [*run, "--profile", str(profile), "--run-id", "bad-nl\n"], {}
    if case == "profile_int_digits":
        profile.write_text(_profile_text(users=BIG))
        return ["profile", "validate", str(profile)], {}
    if case == "stage_int_digits":
        profile.write_text(
            _profile_text().replace('"users": 2, "spawn_rate": 2}', f'"users": {BIG}, "spawn_rate": 2}}')
        )
        return ["profile", "validate", str(profile)], {}
    if case == "json_profile_int_digits":
        (tmp_path / "p.json").write_text(
            json.dumps({**BASE_PROFILE, "users": 1}).replace('"users": 1', f'"users": {BIG}')
        )
        return ["profile", "validate", str(tmp_path / "p.json")], {}
    if case == "chain_int_digits":
        (tmp_path / "c.yml").write_text(
            yaml.safe_dump(BASE_CHAIN, sort_keys=False).replace("status: 201", f"status: {BIG}")
        )
        return ["chain", "validate", str(tmp_path / "c.yml")], {}
    if case == "summary_int_digits":
        results_folder(tmp_path)
        doc = json.dumps(summary_doc("cur")).replace('"count": 40', f'"count": {BIG}', 1)
        (tmp_path / "cur" / "summary.json").write_text(doc)
        return ["compare", "cur", "--baseline", "base", "--results-dir", str(tmp_path)], {}
    if case == "history_int_digits":
        results_folder(tmp_path)
        (tmp_path / "history.jsonl").write_text('{"run_id": "base", "verdict": "pass", "n": ' + BIG + "}\n")
        return ["report", "--results-dir", str(tmp_path)], {}
    if case == "flag_int_digits":
        return ["report", "--last", BIG], {}
    if case == "profile_env_key":
        profile.write_text(_profile_text(env='{"NOT A NAME": "x"}'))
        return [*run, "--profile", str(profile), "--run-id", "bad-envkey"], {}
    if case == "profile_sample_queue_nul":
        profile.write_text(_profile_text(sample_queues='["orders", "evil\\0queue"]'))
        return ["profile", "validate", str(profile)], {}
    if case == "profile_env_value_nul":
        profile.write_text(_profile_text(env='{"GREETING": "a\\0b"}'))
        return [*run, "--profile", str(profile), "--run-id", "bad-envnul"], {}
    if case == "demo_slow":
        return ["profile", "show", str(profile)], {"LOADSTACK_DEMO_SLOW": "/api/*=fast"}
    if case == "oauth_client_auth":
        return ["profile", "show", str(profile)], {"LOADSTACK_OAUTH_CLIENT_AUTH": "bogus"}
    if case == "jwt_algorithm":
        return ["profile", "show", str(profile)], {"LOADSTACK_JWT_ALGORITHM": "none"}
    if case == "ws_frames":
        return ["profile", "show", str(profile)], {"LOADSTACK_WS_FRAMES": "10" + "0" * 12}
    if case == "sample_queues_nul":
        return ["profile", "show", str(profile)], {"LOADSTACK_SAMPLE_QUEUES": "orders,\x01x"}
    if case == "symlinked_body_file":
        (tmp_path / "passwd.bin").symlink_to("/etc/passwd")
        chain = put(
            BASE_CHAIN,
            ("steps", 0, "http"),
            {"method": "POST", "path": "/x", "body_file": {"path": "passwd.bin"}},
        )
        (tmp_path / "c.yml").write_text(yaml.safe_dump(chain, sort_keys=False))
        return ["chain", "validate", str(tmp_path / "c.yml")], {}
    if case == "symlinked_multipart_file":
        (tmp_path / "up").mkdir()
        (tmp_path / "up" / "f.txt").symlink_to("../../")
        http = {
            "method": "POST",
            "path": "/x",
            "multipart": {"files": [{"field": "f", "path": "up/f.txt/etc/hostname"}]},
        }
        (tmp_path / "c.yml").write_text(
            yaml.safe_dump(put(BASE_CHAIN, ("steps", 0, "http"), http), sort_keys=False)
        )
        return ["chain", "validate", str(tmp_path / "c.yml")], {}
    if case == "nested_list_template":
        chain = put(BASE_CHAIN, ("vars", "greeting"), "{{ [[0] * 10000] * 10000 }}")
        (tmp_path / "c.yml").write_text(yaml.safe_dump(chain, sort_keys=False))
        return ["chain", "validate", str(tmp_path / "c.yml")], {}
    if case == "nested_dict_template":
        chain = put(BASE_CHAIN, ("steps", 0, "http", "json", "a"), "{{ {'k': ['x' * 1000] * 1000} }}")
        (tmp_path / "c.yml").write_text(yaml.safe_dump(chain, sort_keys=False))
        return ["chain", "validate", str(tmp_path / "c.yml")], {}
    raise AssertionError(case)


ROUND3 = [
    ("run_id_newline", ("--run-id", "invalid run id")),
    ("profile_int_digits", ("p.yml:", "users", "5000 digits")),
    ("stage_int_digits", ("p.yml:", "stages[0].users", "5000 digits")),
    ("json_profile_int_digits", ("p.json", "users", "5000 digits")),
    ("chain_int_digits", ("c.yml:", "steps[0].expect.status", "5000 digits")),
    ("summary_int_digits", ("summary.json", "5000 digits")),
    ("history_int_digits", ("history.jsonl:1", "5000 digits")),
    ("flag_int_digits", ("--last", "between 1 and 10000")),
    ("profile_env_key", ("p.yml:", "env", "NOT A NAME")),
    ("profile_sample_queue_nul", ("p.yml:", "sample_queues[1]")),
    ("profile_env_value_nul", ("p.yml:", "env.GREETING")),
    ("demo_slow", ("LOADSTACK_DEMO_SLOW", "fast")),
    ("oauth_client_auth", ("LOADSTACK_OAUTH_CLIENT_AUTH", "bogus")),
    ("jwt_algorithm", ("LOADSTACK_JWT_ALGORITHM", "none")),
    ("ws_frames", ("LOADSTACK_WS_FRAMES",)),
    ("sample_queues_nul", ("LOADSTACK_SAMPLE_QUEUES",)),
    ("symlinked_body_file", ("c.yml:", "steps[0].http.body_file.path", "outside the chain file's directory")),
    ("symlinked_multipart_file", ("c.yml:", "steps[0].http.multipart.files[0].path", "outside")),
    ("nested_list_template", ("c.yml:", "vars.greeting", "1000000")),
    ("nested_dict_template", ("c.yml:", "steps[0].http.json.a", "1000000")),
]


@pytest.mark.parametrize(("case", "expected"), ROUND3, ids=[c for c, _ in ROUND3])
def test_round3_bad_input_in_a_real_process(
    tmp_path: Path, listener: Listener, case: str, expected: tuple[str, ...]
) -> None:
    """Each is exit 2 naming the field or variable, no traceback, nothing sent, no results folder."""
    TRIED[f"round 3: {case}"] += 1
    argv, extra = _round3_case(case, tmp_path, listener)
    result = loadstack(*argv, env={**listener.backends(), **extra}, timeout=120)
    output = result.stderr + result.stdout
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    for text in expected:
        assert text in output, (text, output)
    if case == "oauth_client_auth" or case == "jwt_algorithm":
        assert "p.yml" not in output, "the variable is wrong, not the profile"
    assert listener.connections() == 0
    assert not (tmp_path / "r").exists(), "nothing is written for bad input"
    CLEAN[f"round 3: {case}"] += 1


REDIRECTOR = """
import http.server, sys
class Elsewhere(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.send_response(307)
        self.send_header("Location", "http://10.255.255.1:9/api/v1/auth/register")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Elsewhere)
print(server.server_address[1], flush=True)
server.timeout = 1
for _ in range(120):  # bounded: at most about two minutes, whatever happens to the test
    server.handle_request()
"""


def test_seed_only_run_redirected_elsewhere_is_a_clean_refusal(tmp_path: Path) -> None:
    """The register endpoint answers 307 to another host: the guard refuses the hop, and the run says
    so as exit 2 naming the refusal (it was a traceback with exit 1)."""
    import subprocess
    import sys

    server = subprocess.Popen([sys.executable, "-c", REDIRECTOR], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        profile = tmp_path / "p.yml"
        profile.write_text(_profile_text())
        result = loadstack(
            "run", "--profile", str(profile), "--host", f"http://127.0.0.1:{port}", "--scenario", "seed-only",
            "--run-id", "bad-seed-redirect", "--results-dir", str(tmp_path / "r"), timeout=120,
        )  # fmt: skip
    finally:
        server.kill()
        server.wait()
    output = result.stderr + result.stdout
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    assert "10.255.255.1" in output and "seed" in output, output


FORWARDER = """
import socket, sys, threading, time
target = ("127.0.0.1", int(sys.argv[1]))
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(64)
server.settimeout(1)
print(server.getsockname()[1], flush=True)
def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        a.close()
        b.close()
deadline = time.monotonic() + 180  # bounded, whatever happens to the test
while time.monotonic() < deadline:
    try:
        client, _ = server.accept()
    except socket.timeout:
        continue
    upstream = socket.create_connection(target)
    for a, b in ((client, upstream), (upstream, client)):
        threading.Thread(target=pipe, args=(a, b), daemon=True).start()
"""


def test_demo_answers_503_with_one_line_while_postgres_is_down(tmp_path: Path) -> None:
    """The demo's PostgreSQL goes away mid-run: requests are 503 and the log has one line, not a 500
    traceback per request.  "Down" is a forwarder of our own to the shared server, killed: the
    shared PostgreSQL is never stopped."""
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    from loadstack.processes import free_port

    forwarder = subprocess.Popen([sys.executable, "-c", FORWARDER, "5432"], stdout=subprocess.PIPE, text=True)
    port = free_port()
    log = tmp_path / "demo.log"
    assert forwarder.stdout is not None
    dsn = f"postgresql://postgres@127.0.0.1:{int(forwarder.stdout.readline())}/test"
    # The real Redis and RabbitMQ (this module points the environment's backends at its listener).
    backends = {
        "LOADSTACK_POSTGRES_DSN": dsn,
        "LOADSTACK_REDIS_URL": "redis://127.0.0.1:6379/0",
        "LOADSTACK_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672//",
    }
    with log.open("w") as sink:
        demo = subprocess.Popen(
            [sys.executable, "-m", "loadstack", "demo", "serve", "--store", "backend", "--port", str(port)],
            stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **backends},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def register(n: int) -> int:
        body = json.dumps(
            {"email": f"lt-503-{port}-{n}@example.test", "password": "pw-12345678", "name": "x"}
        )
        request = urllib.request.Request(
            f"{url}/api/v1/auth/register", body.encode(), {"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        for _ in range(300):  # up to 30 s for the demo to start
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1).close()
                break
            except OSError:
                assert demo.poll() is None, log.read_text()
                time.sleep(0.1)
        assert register(0) == 201, log.read_text()
        forwarder.kill()
        forwarder.wait()
        statuses = [register(n) for n in range(1, 6)]
    finally:
        forwarder.kill()
        demo.terminate()
        demo.wait(15)
    output = log.read_text()
    assert statuses == [503] * 5, (statuses, output)
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if "unavailable" in line]
    assert len(lines) == 1 and "503" in lines[0], output


# -- every CLI entry point, every flag: a bad value is exit 2 naming it (issue 27, finding 16) ------
def _entry_points() -> list[tuple[tuple[str, ...], Any]]:
    """(command words, parser) of every command ``loadstack --help`` lists, subcommands included."""
    import argparse

    from loadstack.cli import build_parser

    found: list[tuple[tuple[str, ...], Any]] = []
    stack: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = [((), build_parser())]
    while stack:
        words, parser = stack.pop()
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found.append((words, parser))
        for sub in subs:
            stack += [((*words, name), p) for name, p in sub.choices.items()]
    return sorted(found, key=lambda item: item[0])


def _arguments() -> list[tuple[tuple[str, ...], str, Any]]:
    """(command, how the argument is spelt, its action) for every argument that takes a value."""
    out = []
    for words, parser in _entry_points():
        for action in parser._actions:
            if action.nargs == 0 or action.dest in ("help", "version") or action.default == "==SUPPRESS==":
                continue
            name = (
                max(action.option_strings, key=len)
                if action.option_strings
                else str(action.metavar or action.dest)
            )
            out.append((words, name, action))
    return out


ARGUMENTS = _arguments()
CONTROL = st.sampled_from(["\n", "\r", "\x00", "\x1b[2J", "\t", "\x7f", "\x07"])
ODD_VALUES = st.one_of(
    st.sampled_from(["", "-1", "0", "nan", "inf", "-inf", "1e999", "0x10", "1_0", "9" * 5000, "-" + "9" * 5000,
                     "true", "é", "٣", " 5", "5 ", "a" * 5000, "../x", "/", "*"]),
    st.text(max_size=12), st.integers(-(10**30), 10**30).map(str), st.floats().map(repr),
)  # fmt: skip


def _rejected(action: Any, value: str) -> bool:
    """Whether argparse itself refuses ``value`` for ``action`` (its type or its choices)."""
    import argparse

    try:
        converted = action.type(value) if action.type is not None else value
    except (argparse.ArgumentTypeError, TypeError, ValueError):
        return True
    return action.choices is not None and converted not in action.choices


def _filled(words: tuple[str, ...], parser: Any, name: str, value: str) -> list[str]:
    """The command with ``value`` for ``name`` and harmless values for the other required arguments."""
    argv = list(words)
    for action in parser._actions:
        if action.option_strings or action.nargs == 0 or action.dest in ("help",):
            continue
        spelt = str(action.metavar or action.dest)
        if spelt == name:
            argv.append(value)
        elif action.choices:
            argv.append(sorted(action.choices)[0])
        else:
            argv.append("latest" if "run" in spelt.lower() else "x.yml")
    if name.startswith("-"):
        argv.append(f"{name}={value}")
    return argv


@settings(SETTINGS, max_examples=4 * len(ARGUMENTS))
@given(index=st.integers(0, len(ARGUMENTS) - 1), data=st.data())
def test_every_argument_of_every_command_refuses_a_bad_value_by_name(
    listener: Listener, index: int, data: Any
) -> None:
    """Control characters anywhere, and whatever the argument's own type or choices refuse: exit 2,
    the argument named, no traceback, nothing started, nothing sent.  (Values the argument accepts
    are not drawn: they would run the command.)"""
    words, name, action = ARGUMENTS[index]
    parser = dict(_entry_points())[words]
    control = data.draw(st.tuples(st.text(max_size=4), CONTROL, st.text(max_size=4)).map("".join))
    odd = data.draw(ODD_VALUES)
    value = odd if (action.type is not None or action.choices) and _rejected(action, odd) else control
    argv = _filled(words, parser, name, value)
    refused("CLI: every argument", listener, argv, name.lstrip("-") if not name.startswith("-") else name)


def test_every_entry_point_is_fuzzed() -> None:
    """The fuzz above covers every command `loadstack --help` lists (a new command joins by itself)."""
    commands = {words[0] for words, _ in _entry_points()}
    listed = {"run", "ui", "master", "worker", "check", "stop", "stack", "status", "profile", "chain", "import",
              "inspect", "report", "compare", "auth", "dashboard", "demo", "k8s"}  # fmt: skip
    assert listed <= commands
    assert len(ARGUMENTS) > 80, len(ARGUMENTS)
