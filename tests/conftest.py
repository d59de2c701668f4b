from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from loadstack_demo.process import demo_platform
from tests.masked_run import Run, new_canary, scraped_headless_run

pytest_plugins = ["tests.shards"]  # --shard I/N (just test runs two side by side)


@pytest.fixture(scope="session")
def demo_url() -> Iterator[str]:
    """A demo platform process shared by tests that need a fixed target (or its /api/status)."""
    with demo_platform(store="auto") as url:
        yield url


@pytest.fixture(scope="session")
def leaky_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One headless run of the leaky user (secrets in its request names, failures and exceptions),
    shared by the tests that parse its outputs and open its report: they read it, none changes it
    but by adding files (``loadstack compare`` writes its comparison beside the run)."""
    return scraped_headless_run(tmp_path_factory.mktemp("leaky"), "leaky", new_canary())


# The suite runs natively unless a test asks for --docker: a Docker engine left running by the
# container tests must not turn every other `loadstack run` into a compose run.
os.environ.setdefault("LOADSTACK_RUN_MODE", "native")
# The suite runs two shards side by side and must hold beside other busy processes: a run whose
# generator was saturated is reported as such, but keeps the exit status its test is about
# (tests/test_generator_health.py sets "fail", the default, where exit 7 is the point).
os.environ.setdefault("LOADSTACK_GENERATOR_SATURATED", "warn")
