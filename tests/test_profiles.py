"""Profile schema, resolution and the errors a user sees for a bad profile (real CLI, no load)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadstack import profiles
from loadstack.configfile import ConfigError
from loadstack.durations import parse_duration
from tests.helpers import ROOT, assert_no_orphans, loadstack, write_profile


def test_builtin_profiles_validate() -> None:
    files = sorted(str(p) for p in (ROOT / "profiles").glob("*.yml"))
    names = {Path(f).stem for f in files}
    assert {"smoke", "load", "stress", "soak", "spike", "breakpoint"} <= names
    result = loadstack("profile", "validate", *files)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "expected_users", "expected_run_time"),
    [("smoke", 5, 30), ("load", 50, 300), ("stress", 200, 600), ("soak", 30, 1800)],
)
def test_builtin_profile_figures(name: str, expected_users: int, expected_run_time: float) -> None:
    settings = profiles.resolve(name, env={})
    assert settings.users == expected_users
    assert settings.run_time == expected_run_time


def test_spike_and_breakpoint_are_shaped() -> None:
    spike = profiles.resolve("spike", env={})
    users = [s["users"] for s in spike.stages or []]
    assert users[0] < users[1] > users[2], "spike must go baseline -> burst -> recovery"
    bp = profiles.resolve("breakpoint", env={})
    assert bp.breakpoint and bp.breakpoint["stop_when"]


def test_precedence_profile_env_flag() -> None:
    env = {"LOCUST_USERS": "7", "LOCUST_RUN_TIME": "2m"}
    settings = profiles.resolve("smoke", env=env)
    assert (settings.users, settings.run_time) == (7, 120)
    assert settings.overrides["users"] == "environment LOCUST_USERS"
    settings = profiles.resolve("smoke", users=9, run_time="10s", env=env)
    assert (settings.users, settings.run_time) == (9, 10)
    assert settings.overrides["users"] == "command line"


def test_profile_show_reports_env_override() -> None:
    result = loadstack("profile", "show", "smoke", "--json", env={"LOCUST_SPAWN_RATE": "3"})
    assert result.returncode == 0, result.stderr
    assert '"spawn_rate": 3.0' in result.stdout
    assert "environment LOCUST_SPAWN_RATE" in result.stdout


def test_durations() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("1h30m") == 5400
    assert parse_duration("2.5s") == 2.5
    assert parse_duration("250ms") == 0.25
    with pytest.raises(ValueError):
        parse_duration("5 minutes")


BAD_CASES = {
    "unknown_key": ("users: 5\nuserz: 6\n", "userz", 8),
    "bad_type": ("users: many\n", "users", 7),
    "negative_users": ("users: -5\n", "users", 7),
}
BASE = "name: {name}\ndescription: bad\nlocustfile: {locustfile}\nspawn_rate: 1\nrun_time: 5s\nwarmup: 0\n"


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_malformed_profile_exit_2_with_field_and_line(tmp_path: Path, case: str) -> None:
    body, field, line = BAD_CASES[case]
    path = tmp_path / f"{case}.yml"
    path.write_text(BASE.format(name=case, locustfile=ROOT / "load-testing/locustfiles/http_users.py") + body)
    run_id = f"bad-{case}"
    result = loadstack(
        "run", "--profile", str(path), "--run-id", run_id, "--results-dir", str(tmp_path / "r")
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{path}:{line}: {field}" in result.stderr, result.stderr
    assert not (tmp_path / "r" / run_id).exists(), "nothing may be started or written for bad input"
    assert_no_orphans(run_id, wait=0)


def test_bad_yaml_syntax_names_line(tmp_path: Path) -> None:
    path = tmp_path / "syntax.yml"
    path.write_text("name: syntax\ndescription: x\nusers: [1, 2\nrun_time: 5s\n")
    result = loadstack(
        "run", "--profile", str(path), "--run-id", "bad-syntax", "--results-dir", str(tmp_path)
    )
    assert result.returncode == 2
    assert f"{path}:4: invalid YAML" in result.stderr, result.stderr
    assert_no_orphans("bad-syntax", wait=0)


def test_missing_profile_file(tmp_path: Path) -> None:
    result = loadstack("run", "--profile", str(tmp_path / "nope.yml"), "--results-dir", str(tmp_path))
    assert result.returncode == 2
    assert "nope.yml: file not found" in result.stderr
    result = loadstack("run", "--profile", "no-such-profile", "--results-dir", str(tmp_path))
    assert result.returncode == 2
    assert "no profile of that name" in result.stderr


def test_missing_locustfile_and_unknown_user_class(tmp_path: Path) -> None:
    path = write_profile(tmp_path / "nolocust.yml", locustfile=str(tmp_path / "missing.py"))
    with pytest.raises(ConfigError, match="locustfile: file not found"):
        profiles.load_profile(str(path))
    path = write_profile(tmp_path / "noclass.yml", user_classes={"NoSuchUser": 1})
    result = loadstack("run", "--profile", str(path), "--run-id", "bad-class", "--results-dir", str(tmp_path))
    assert result.returncode == 2
    assert "user_classes: NoSuchUser not found" in result.stderr
    assert_no_orphans("bad-class", wait=0)


def test_nested_error_paths(tmp_path: Path) -> None:
    path = write_profile(tmp_path / "stages.yml", stages=[{"duration": "5s", "users": 2, "spawn_rate": 0}])
    with pytest.raises(ConfigError) as err:
        profiles.load_profile(str(path))
    assert "stages[0].spawn_rate" in str(err.value)
