"""The step schema: one model per step kind, told apart by the kind key; errors point at the data as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import loadstack

CASES = {
    # case: (steps text, expected "line: field: message" fragments)
    "python_in_a_file": (
        "  - name: a\n    sleep: 1ms\n  - name: b\n    python: os.system\n",
        ["6: steps[1].python: python steps exist only in the Python API"],
    ),
    "two_kinds": (
        "  - name: a\n    http: {path: /x}\n    sql: {query: SELECT 1}\n",
        ["3: steps[0]: a step needs exactly one kind", "found http, sql"],
    ),
    "not_a_mapping": ("  - just a string\n", ["3: steps[0]: a step is a mapping"]),
    "nested_kind_error": (
        "  - name: pick\n"
        "    branch:\n"
        "      paths:\n"
        "        - {name: one, weight: 1, steps: [{name: a, sleep: 1ms}]}\n"
        "        - name: two\n"
        "          weight: 1\n"
        "          steps:\n"
        "            - name: b\n"
        "              redis: {command: FLUSHALL}\n",
        ["11: steps[0].branch.paths[1].steps[0].redis: command FLUSHALL is not allowed"],
    ),
    "nested_unknown_field": (
        "  - name: a\n    http: {path: /x, jsn: {a: 1}}\n",
        ["4: steps[0].http.jsn: unknown field"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_step_schema_errors_name_line_and_field(tmp_path: Path, case: str) -> None:
    steps, fragments = CASES[case]
    chain = tmp_path / f"{case}.yml"
    chain.write_text("name: t\nsteps:\n" + steps)
    out = loadstack("chain", "validate", str(chain))
    assert out.returncode == 2, out.stdout + out.stderr
    for fragment in fragments:
        assert fragment in out.stderr, out.stderr
    assert f"{chain}:" in out.stderr and "Traceback" not in out.stderr


def test_every_kind_validates_and_builds(tmp_path: Path) -> None:
    chain = tmp_path / "all.yml"
    chain.write_text(
        "name: all\n"
        "steps:\n"
        "  - {name: h, http: {path: /x}, save: {id: $.id}, repeat: {times: 2}}\n"
        "  - {name: w, ws: {send: {cmd: start}}, on_failure: continue}\n"
        "  - {name: s, sql: {query: 'SELECT %(id)s', params: {id: '{{ vars.id }}'}}, expect: {rows: 1}}\n"
        "  - {name: p, amqp_publish: {routing_key: k, json: {a: 1}}}\n"
        "  - {name: e, amqp_expect: {exchange: amq.topic, match: 'true'}}\n"
        "  - {name: r, redis: {command: get, args: [k]}, when: 'vars.id > 0'}\n"
        "  - {name: aw, await: {redis: {command: GET, args: [k]}, since: h}}\n"
        "  - {name: sl, sleep: 5ms, on_failure: {goto: h, max: 2}}\n"
        "  - {name: t, think: {min: 1ms, max: 2ms}}\n"
        "  - name: b\n"
        "    branch:\n"
        "      paths:\n"
        "        - {name: x, when: 'vars.id == 1', steps: [{name: t2, think: 1ms}]}\n"
        "        - {name: y, steps: [{name: r2, redis: {command: GET, args: [k]}, repeat: {until: 'last.value', max: 3}}]}\n"
    )
    out = loadstack("chain", "validate", str(chain))
    assert out.returncode == 0, out.stderr
    assert f"{chain}: ok (all, 12 steps)" in out.stdout
