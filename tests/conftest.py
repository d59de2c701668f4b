from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from loadstack_demo.process import demo_platform


@pytest.fixture(scope="session")
def demo_url() -> Iterator[str]:
    """A demo platform process shared by tests that need a fixed target (or its /api/status)."""
    with demo_platform(store="auto") as url:
        yield url


# The suite runs natively unless a test asks for --docker: a Docker engine left running by the
# container tests must not turn every other `loadstack run` into a compose run.
os.environ.setdefault("LOADSTACK_RUN_MODE", "native")
