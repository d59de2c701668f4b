"""``branch`` steps: run one of several paths, chosen by weight (seeded per user) or by the first ``when`` that holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadstack.chains import metrics
from loadstack.chains.engine import ChainRun, run_sequence
from loadstack.chains.kinds.base import Builder, Step
from loadstack.chains.schema import BranchStepSpec
from loadstack.chains.templates import Expression, TemplateError


@dataclass(frozen=True, slots=True)
class CompiledPath:
    """One path of a branch, built: its ``when`` compiled, its steps built."""

    name: str
    when: Expression | None
    weight: float | None
    steps: list[Step[Any]]


class BranchStep(Step[BranchStepSpec]):
    kind = "branch"

    def __init__(self, spec: BranchStepSpec, builder: Builder) -> None:
        super().__init__(spec, builder)
        self.paths = [
            CompiledPath(
                name=p.name,
                when=Expression(p.when) if p.when else None,
                weight=p.weight,
                steps=[builder.build(s) for s in p.steps],
            )
            for p in spec.branch.paths
        ]
        self.weights = [p.weight or 0.0 for p in self.paths]
        self.weighted = all(p.weight is not None for p in self.paths)

    def children(self) -> list[Step[Any]]:
        out: list[Step[Any]] = []
        for path in self.paths:
            for step in path.steps:
                out.append(step)
                out.extend(step.children())
        return out

    def references(self) -> set[str]:
        refs = super().references()
        for path in self.paths:
            if path.when is not None:
                refs |= path.when.references
        return refs

    def choose(self, run: ChainRun) -> CompiledPath | None:
        if self.weighted:
            return run.rt.rng.choices(self.paths, weights=self.weights)[0]
        for path in self.paths:
            if path.when is None:
                return path
            try:
                if path.when(run.scope()):
                    return path
            except TemplateError as exc:
                raise self.fail(run, f"path {path.name}: {exc}", request_type="BRANCH") from None
        return None

    def execute(self, run: ChainRun) -> None:
        chosen = self.choose(run)
        if chosen is None:
            metrics.counters.skipped(run.chain.name, self.name)
            return
        metrics.counters.branch(run.chain.name, self.name, chosen.name)
        run_sequence(chosen.steps, run)
