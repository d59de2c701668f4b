"""``sql`` steps: one query through the user's PostgreSQL client; ``last`` is ``{rows, rowcount}``."""

from __future__ import annotations

from typing import Any

from loadstack.chains.engine import ChainRun, StepFailed
from loadstack.chains.kinds.base import Builder, Step
from loadstack.chains.schema import SqlStepSpec
from loadstack.chains.templates import compile_value
from loadstack.users.base import RequestFailure


class SqlStep(Step[SqlStepSpec]):
    kind, request_type = "sql", "SQL"

    def __init__(self, spec: SqlStepSpec, builder: Builder) -> None:
        super().__init__(spec, builder)
        self.query = spec.sql.query
        self.params = compile_value(spec.sql.params)

    def templates(self) -> list[Any]:
        return [self.params]

    def execute(self, run: ChainRun) -> None:
        params = self.render(run, self.params)
        try:
            run.rt.sql.query(
                run.stat_name(self.name),
                self.query,
                params,
                check=lambda rows: self.finish(run, {"rows": rows, "rowcount": len(rows)}),
            )
        except RequestFailure as failure:
            raise StepFailed(self.name, failure.message) from None
