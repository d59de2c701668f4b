"""``python`` steps (Python API only): a callable ``fn(run) -> value``, timed as ``PYTHON``; ``last`` is ``{value}``."""

from __future__ import annotations

from typing import Any

from loadstack.chains.engine import ChainRun
from loadstack.chains.kinds.base import Builder, Step
from loadstack.chains.schema import PythonStepSpec


class PythonStep(Step[PythonStepSpec]):
    kind, request_type = "python", "PYTHON"

    def __init__(self, spec: PythonStepSpec, builder: Builder) -> None:
        super().__init__(spec, builder)
        self.fn = spec.python

    def execute(self, run: ChainRun) -> None:
        fn = self.fn

        def op() -> Any:
            value = fn(run)
            self.finish(run, {"value": value})
            return value

        self.run_client(run, run.rt.timed, op)
