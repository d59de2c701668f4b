"""Step kinds: how each kind of chain step runs (one module per kind), and their registry.

The file format of every kind is in :mod:`loadstack.chains.schema`; the Python API that builds
step specs is :mod:`loadstack.chains.steps`.  A new kind needs a spec model in the schema's
``StepSpec`` union, a :class:`~loadstack.chains.kinds.base.Step` subclass here, and one line in
``STEP_KINDS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadstack.chains.kinds.amqp import AmqpExpectStep, AmqpPublishStep
from loadstack.chains.kinds.await_ import AwaitStep
from loadstack.chains.kinds.base import Builder, Step
from loadstack.chains.kinds.branch import BranchStep
from loadstack.chains.kinds.http import HttpStep
from loadstack.chains.kinds.pause import SleepStep, ThinkStep
from loadstack.chains.kinds.python import PythonStep
from loadstack.chains.kinds.redis import RedisStep
from loadstack.chains.kinds.sql import SqlStep
from loadstack.chains.kinds.ws import WsStep
from loadstack.chains.schema import StepSpec

# Every step kind, by the key that names it in a step (`http:`, `await:` …).
STEP_KINDS: dict[str, type[Step[Any]]] = {
    "http": HttpStep,
    "ws": WsStep,
    "sql": SqlStep,
    "redis": RedisStep,
    "amqp_publish": AmqpPublishStep,
    "amqp_expect": AmqpExpectStep,
    "await": AwaitStep,
    "sleep": SleepStep,
    "think": ThinkStep,
    "branch": BranchStep,
    "python": PythonStep,
}


def build_step(spec: StepSpec, base_dir: Path | None = None) -> Step[Any]:
    """The runnable step of ``spec``; request files are relative to ``base_dir`` (the cwd when None)."""
    return Builder(STEP_KINDS, base_dir).build(spec)


__all__ = ["STEP_KINDS", "Builder", "Step", "build_step"]
