"""The container end-to-end tests share one Docker engine and one set of offline images."""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers import ROOT


@pytest.fixture(scope="session")
def engine_and_images() -> None:
    """A Docker engine (started if none answers) and the offline images (cached by content hash)."""
    started = subprocess.run([str(ROOT / "infra/offline/start-dockerd.sh")], capture_output=True, text=True)
    assert started.returncode == 0, f"no Docker engine could be started: {started.stderr}"
    built = subprocess.run(
        [str(ROOT / "infra/offline/build-images.sh")], capture_output=True, text=True, timeout=1200
    )
    assert built.returncode == 0, built.stderr[-3000:]
