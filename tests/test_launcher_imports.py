"""The runner, CLI and demo platform must never import Locust: it gevent-patches whatever imports it."""

from __future__ import annotations

import subprocess
import sys


def test_runner_cli_demo_do_not_import_locust() -> None:
    code = (
        "import sys, loadstack.cli, loadstack.lifecycle, loadstack.launchers.native, loadstack.launchers.compose, "
        "loadstack.background, loadstack_demo.target, loadstack.results, loadstack.data.teardown, "
        "loadstack.data.seed, loadstack.chains.templates, loadstack_demo.server, loadstack_demo.app\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
