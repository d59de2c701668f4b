"""Chain files are validated before any load: each error names file, line and field; exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from loadstack.chains.jsonpath import json_get, parse_json_path
from loadstack.chains.templates import Expression, Template, TemplateError
from tests.helpers import ROOT, assert_no_orphans, loadstack, loadstack_in_process, write_profile

GOOD_STEPS = """name: t
seed: customers
steps:
  - name: login
    http:
      method: POST
      path: /api/v1/auth/login
      json: {email: "{{ seed.email }}", password: "{{ seed.password }}"}
    save: {token: $.access_token}
"""

BAD = {
    # case: (text, line, field, message fragment)
    "unknown_kind": (
        GOOD_STEPS + "  - name: two\n    smtp: {to: x}\n",
        11,
        "steps[1].smtp",
        "unknown field",
    ),
    "no_kind": (GOOD_STEPS + "  - name: two\n    when: 'true'\n", 10, "steps[1]", "exactly one kind"),
    "undefined_variable": (
        GOOD_STEPS + "  - name: two\n    http: {path: '/x/{{ vars.order_id }}'}\n",
        10,
        "steps[1]",
        "undefined variable vars.order_id",
    ),
    "goto_missing": (
        GOOD_STEPS + "    on_failure: {goto: nowhere}\n",
        10,
        "steps[0].on_failure.goto",
        "no such step",
    ),
    "unbounded_cycle": (
        GOOD_STEPS + "  - name: two\n    http: {path: /x}\n    on_failure: {goto: login}\n",
        12,
        "steps[1].on_failure",
        "cycle without bound",
    ),
    "bad_expression": (
        GOOD_STEPS + "  - name: two\n    when: 'vars.token =='\n    http: {path: /x}\n",
        11,
        "steps[1].when",
        "bad expression",
    ),
    "bad_yaml": (GOOD_STEPS + "  - name: [two\n    http: {path: /x}\n", 11, "", "invalid YAML"),
    "unbounded_repeat": (
        GOOD_STEPS + "  - name: two\n    http: {path: /x}\n    repeat: {until: 'last.status == 200'}\n",
        12,
        "steps[1].repeat",
        "needs max",
    ),
    "bad_redis_command": (
        GOOD_STEPS + "  - name: two\n    redis: {command: FLUSHALL}\n",
        11,
        "steps[1].redis",
        "not allowed",
    ),
    "since_not_earlier": (
        GOOD_STEPS
        + "  - name: two\n    await:\n      redis: {command: GET, args: [k]}\n      since: three\n",
        13,
        "steps[1].await.since",
        "not an earlier step",
    ),
    "vars_reads_a_response": (
        "name: t\nvars:\n  id: '{{ last.json.id }}'\nsteps:\n  - name: one\n    http: {path: /x}\n",
        3,
        "vars.id",
        "'last' is not available in vars:",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_chain_validation_errors(tmp_path: Path, case: str) -> None:
    text, line, field, fragment = BAD[case]
    chain = tmp_path / f"{case}.yml"
    chain.write_text(text)
    out = loadstack_in_process("chain", "validate", str(chain))
    assert out.returncode == 2, out.stdout + out.stderr
    expected = f"{chain}:{line}: {field}: " if field else f"{chain}:{line}: "
    assert expected in out.stderr, out.stderr
    assert fragment in out.stderr, out.stderr


def test_run_with_a_bad_chain_starts_no_load(tmp_path: Path) -> None:
    chain = tmp_path / "bad.yml"
    chain.write_text(BAD["undefined_variable"][0])
    profile = write_profile(
        tmp_path / "p.yml",
        locustfile=str(ROOT / "load-testing/locustfiles/chain_users.py"),
        chains=[{"path": str(chain)}],
        seed={"customers": 5},
    )
    out = loadstack(
        "run", "--profile", str(profile), "--run-id", "badchain", "--results-dir", str(tmp_path / "r")
    )
    assert out.returncode == 2
    assert f"{chain}:10: steps[1]: undefined variable vars.order_id" in out.stderr
    assert not (tmp_path / "r" / "badchain").exists()
    assert_no_orphans("badchain", wait=0)


def test_chain_that_draws_seed_needs_profile_seed(tmp_path: Path) -> None:
    profile = write_profile(
        tmp_path / "p.yml",
        locustfile=str(ROOT / "load-testing/locustfiles/chain_users.py"),
        chains=[{"path": str(ROOT / "load-testing/chains/order_pipeline.yml")}],
    )
    out = loadstack("run", "--profile", str(profile), "--results-dir", str(tmp_path))
    assert out.returncode == 2 and "seed: missing" in out.stderr


def test_shipped_chains_validate() -> None:
    files = sorted(str(p) for p in (ROOT / "load-testing/chains").glob("*.yml"))
    out = loadstack("chain", "validate", *files)
    assert out.returncode == 0, out.stderr


def test_expressions_are_sandboxed_and_typed() -> None:
    scope = {"vars": {"amount": 250, "token": "t"}, "last": {"json": {"id": 7}}}
    assert Expression("vars.amount > 200 and last.json.id == 7")(scope) is True
    assert Template("{{ vars.amount }}").render(scope) == 250  # a lone expression keeps its type
    assert Template("Bearer {{ vars.token }}").render(scope) == "Bearer t"
    for evil in ("().__class__.__base__", "vars.amount.__class__", "lipsum.__globals__"):
        with pytest.raises(TemplateError):
            Expression(evil)(scope)
    with pytest.raises(TemplateError):
        Expression("vars.missing")(scope)


def test_json_path() -> None:
    doc = {"items": [{"id": 1}, {"id": 2, "tags": ["a"]}], "x y": 3}
    assert json_get(doc, parse_json_path("$.items[1].id")) == 2
    assert json_get(doc, parse_json_path("$.items[1].tags[0]")) == "a"
    assert json_get(doc, parse_json_path("$['x y']")) == 3
    with pytest.raises(ValueError):
        parse_json_path("items.id")
    with pytest.raises(KeyError):
        json_get(doc, parse_json_path("$.items[5]"))


# -- chains from any source pass the pre-run checks (issue 27, finding 6) ------------------------
CHAIN_USERS = str(ROOT / "load-testing/locustfiles/chain_users.py")
HOOKS = str(ROOT / "load-testing/loadstack/_hooks/loadstack_hooks.py")

# What `loadstack import har` writes for a recorded login: the password is an environment variable.
RECORDED_LOGIN = """name: recorded
steps:
  - name: login
    http:
      method: POST
      path: /api/v1/auth/login
      json:
        email: "{{{{ env.{user} }}}}"
        password: "{{{{ env.{password} }}}}"
"""


def _run_with_chains(tmp_path: Path, run_id: str, env: dict[str, str], **profile: object):
    path = write_profile(tmp_path / "p.yml", locustfile=CHAIN_USERS, seed={"customers": 5}, **profile)
    return loadstack(
        "run", "--profile", str(path), "--run-id", run_id, "--results-dir", str(tmp_path / "r"), env=env
    )  # fmt: skip


@pytest.mark.parametrize("case", ["missing", "invalid"])
def test_chains_named_by_the_environment_are_checked_before_any_load(tmp_path: Path, case: str) -> None:
    """``LOADSTACK_CHAINS`` used to skip the checks: every user died in the worker log and the run
    passed with 0 requests."""
    chain = tmp_path / f"{case}.yml"
    if case == "invalid":
        chain.write_text(BAD["undefined_variable"][0])
    run_id = f"envchain-{case}"
    out = _run_with_chains(tmp_path, run_id, {"LOADSTACK_CHAINS": str(chain)})
    assert out.returncode == 2, out.stdout[-3000:] + out.stderr[-3000:]
    if case == "invalid":
        assert f"{chain}:10: steps[1]: undefined variable vars.order_id" in out.stderr, out.stderr
    else:
        assert "missing.yml: file not found" in out.stderr, out.stderr
    assert "named by LOADSTACK_CHAINS" in out.stderr
    assert not (tmp_path / "r" / run_id).exists(), "nothing started, nothing written"
    assert_no_orphans(run_id, wait=0)


def test_plain_locust_checks_chains_named_by_the_environment(tmp_path: Path) -> None:
    """The same check inside the master, however it is started (here: plain ``locust --headless``)."""
    chain = tmp_path / "missing.yml"
    profile = write_profile(tmp_path / "p.yml", locustfile=CHAIN_USERS, seed={"customers": 5})
    env = {
        **os.environ,
        "LOADSTACK_PROFILE": str(profile),
        "LOADSTACK_RESULTS_DIR": str(tmp_path / "r"),
        "LOADSTACK_RUN_ID": "envchain-plain",
        "LOADSTACK_CHAINS": str(chain),
    }
    out = subprocess.run(
        [sys.executable, "-m", "locust", "-f", f"{HOOKS},{CHAIN_USERS}", "--headless", "-u", "1", "-t", "2s",
         "-H", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr[-3000:]
    assert "missing.yml: file not found" in out.stderr and "bad input: nothing was started" in out.stderr
    assert not (tmp_path / "r" / "envchain-plain").exists()


@pytest.mark.parametrize("source", ["profile", "environment"])
def test_unset_variables_of_an_imported_chain_stop_the_run(tmp_path: Path, source: str) -> None:
    """A recording's ``{{ env.HAR_… }}`` with the variable unset used to start and fail every
    iteration (MissingSecret); now the run names each unset variable and starts nothing."""
    tag = uuid.uuid4().hex[:6].upper()
    user, password = f"HAR_USERNAME_{tag}", f"HAR_PASSWORD_{tag}"
    chain = tmp_path / "recorded.yml"
    chain.write_text(RECORDED_LOGIN.format(user=user, password=password))
    run_id = f"unset-env-{source}"
    if source == "profile":
        out = _run_with_chains(
            tmp_path, run_id, {user: "someone@example.test"}, chains=[{"path": str(chain)}]
        )
    else:
        out = _run_with_chains(
            tmp_path, run_id, {"LOADSTACK_CHAINS": str(chain), user: "someone@example.test"}
        )
    assert out.returncode == 2, out.stdout[-3000:] + out.stderr[-3000:]
    assert (
        f"{chain}:3: steps[0]: environment variable {password} is not set (env.{password})" in out.stderr
    ), out.stderr
    assert user not in out.stderr, "a variable that is set is not reported"
    assert not (tmp_path / "r" / run_id).exists()
    assert_no_orphans(run_id, wait=0)
