"""What every chain step has, whatever its kind: ``when``, ``repeat``, ``on_failure``, ``expect``, ``check``, ``save``.

A step kind subclasses :class:`Step` with its spec model and implements ``execute``.  A step's
expectations, ``check`` and ``save`` run inside its timed operation, so a mismatch is that step's
failure in Locust's stats, with a message that names the step, what was expected and what was
observed.  Failures the step reports itself go through :meth:`Step.fail`, the one place that
words and reports them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from loadstack.chains.engine import ChainRun, Goto, Mismatch, OnFailure, Repeat, StepFailed
from loadstack.chains.jsonpath import json_get, parse_json_path
from loadstack.chains.schema import ExpectSpec, GotoSpec, SaveSpec, StepBase, StepSpec
from loadstack.chains.templates import Expression, Template, TemplateError, references, render_value
from loadstack.users.base import RequestFailure

if TYPE_CHECKING:
    from loadstack.chains.engine import Chain
    from loadstack.chains.runtime import ChainRuntime

NO_SCOPE: dict[str, Any] = {}
_MISSING = object()

S = TypeVar("S", bound=StepBase)


def has_template(value: Any) -> bool:
    if isinstance(value, Template):
        return value._expr is not None or value._template is not None
    if isinstance(value, dict):
        return any(has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(has_template(v) for v in value)
    return False


def render_constant(value: Any) -> Any:
    """Render a compiled value that has no templates (no scope needed)."""
    return render_value(value, NO_SCOPE)


class LazyResult(dict):
    """A step result (``last``) that loads some of its parts on first use, such as an HTTP body."""

    def shown(self) -> dict[str, Any]:
        """What a failure message shows (may load the lazy parts)."""
        return dict(self)


def short(value: Any, limit: int = 160) -> str:
    """A value for a failure message: compact JSON, cut at ``limit`` characters."""
    if isinstance(value, LazyResult):
        value = value.shown()
    try:
        text = json.dumps(value, default=str, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Extractor:
    """One ``save:`` source, compiled."""

    def __init__(self, var: str, spec: SaveSpec | str) -> None:
        if isinstance(spec, str):
            spec = SaveSpec(json=spec) if spec.startswith("$") else SaveSpec(expr=spec)
        self.var = var
        self.spec = spec
        self.path = parse_json_path(spec.json_path) if spec.json_path else None
        self.expr = Expression(spec.expr) if spec.expr else None

    @property
    def references(self) -> set[str]:
        return self.expr.references if self.expr else set()

    def __call__(self, last: Any, scope: dict[str, Any]) -> Any:
        s = self.spec
        try:
            if self.path is not None:
                return json_get((last or {}).get("json"), self.path)
            if s.header is not None:
                return (last or {}).get("headers", {})[s.header.lower()]
            if s.column is not None:
                return (last or {})["rows"][s.row][s.column]
            if s.field is not None:
                return (last or {})["value"][s.field]
            assert self.expr is not None
            return self.expr(scope)
        except (KeyError, IndexError, TypeError) as exc:
            source = s.json_path or s.header or s.column or s.field or s.expr
            raise Mismatch(
                f"save {self.var}: {source!r} not found ({type(exc).__name__}: {exc}) in {short(last)}"
            ) from None
        except TemplateError as exc:
            raise Mismatch(f"save {self.var}: {exc}") from None


@dataclass(frozen=True)
class Builder:
    """What building a step needs besides its spec: the registered kinds, and where request files are."""

    kinds: Mapping[str, type[Step[Any]]]
    base_dir: Path | None = None  # a chain file's directory; None: the current directory (Python API)

    def build(self, spec: StepSpec) -> Step[Any]:
        return self.kinds[spec.kind](spec, self)


def _on_failure(spec: StepBase) -> OnFailure:
    policy = spec.on_failure
    return Goto(policy.goto, policy.max) if isinstance(policy, GotoSpec) else policy


def _repeat(spec: StepBase) -> Repeat | None:
    r = spec.repeat
    if r is None:
        return None
    return Repeat(
        times=r.times,
        until=Expression(r.until) if r.until else None,
        while_=Expression(r.while_) if r.while_ else None,
        limit=r.max or r.times or 1,
    )


class Step(Generic[S]):
    """The common parts of a step; ``S`` is the kind's spec model."""

    kind: ClassVar[str] = "custom"
    request_type: ClassVar[str] = "CUSTOM"

    def __init__(self, spec: S, builder: Builder) -> None:
        self.spec = spec
        self.name = spec.name
        self.when = Expression(spec.when) if spec.when else None
        self.on_failure = _on_failure(spec)
        self.repeat = _repeat(spec)
        self.saves = [Extractor(var, s) for var, s in (spec.save or {}).items()]
        self.expect = spec.expect
        self.check = Expression(spec.check) if spec.check else None
        self._constants: dict[int, Any] = {}

    # -- structure -------------------------------------------------------------------------
    def children(self) -> list[Step[Any]]:
        return []

    def prepare(self, runtime: ChainRuntime, chain: Chain) -> None:
        """Per-user setup before the first run."""

    def templates(self) -> list[Any]:
        """Everything this step renders (for static checks of variable use)."""
        return []

    def references(self) -> set[str]:
        refs: set[str] = set()
        for value in self.templates():
            refs |= references(value)
        for expr in (self.when, self.check):
            if expr is not None:
                refs |= expr.references
        if self.repeat is not None:
            for expr in (self.repeat.until, self.repeat.while_):
                if expr is not None:
                    refs |= expr.references
        for extractor in self.saves:
            refs |= extractor.references
        return refs

    # -- execution -------------------------------------------------------------------------
    def execute(self, run: ChainRun) -> None:
        raise NotImplementedError

    def fail(
        self, run: ChainRun, problem: str, *, elapsed_ms: float = 0.0, request_type: str | None = None
    ) -> StepFailed:
        """Report a failure of this step as its own stat entry; returns the :class:`StepFailed` to raise."""
        name = run.stat_name(self.name)
        message = f"{name}: {problem}"
        run.rt.timed.report(name, elapsed_ms, request_type=request_type or self.request_type, error=message)
        return StepFailed(self.name, message)

    def render(self, run: ChainRun, value: Any) -> Any:
        # Constants are rendered once per step and reused (callers never mutate them).
        static = self._constants.get(id(value), _MISSING)
        if static is not _MISSING:
            return static
        if not has_template(value):
            static = self._constants[id(value)] = render_constant(value)
            return static
        try:
            return render_value(value, run.scope())
        except TemplateError as exc:
            raise self.fail(run, str(exc)) from None

    def finish(self, run: ChainRun, last: Any) -> None:
        """Expectations, check and saves on a result; raises :class:`Mismatch`."""
        self.check_expectations(last)
        if self.check is not None:
            try:
                ok = self.check(run.scope(last=last))
            except TemplateError as exc:
                raise Mismatch(f"check `{self.check.source}`: {exc}") from None
            if not ok:
                raise Mismatch(f"check `{self.check.source}` is false; observed {short(last)}")
        if self.saves:
            scope = run.scope(last=last)
            for extractor in self.saves:
                run.vars[extractor.var] = extractor(last, scope)
        run.last = last
        run.done_at[self.name] = time.perf_counter()

    def check_expectations(self, last: Any) -> None:
        e: ExpectSpec | None = self.expect
        if e is None:
            return
        if e.rows is not None and len(last.get("rows", [])) != e.rows:
            raise Mismatch(
                f"expected {e.rows} rows, observed {len(last.get('rows', []))}: {short(last.get('rows'))}"
            )
        if e.min_rows is not None and len(last.get("rows", [])) < e.min_rows:
            raise Mismatch(f"expected at least {e.min_rows} rows, observed {len(last.get('rows', []))}")

    def run_client(
        self, run: ChainRun, client: Any, op: Any, span: tuple[str, dict[str, Any]] | None = None
    ) -> Any:
        """``op`` timed and reported by a loadstack client (SQL, Redis, AMQP, WS, custom).

        ``span``: its span's name and attributes when traced (only built then: see callers).
        """
        try:
            return client.call(run.stat_name(self.name), op, request_type=self.request_type, span=span)
        except RequestFailure as failure:
            raise StepFailed(self.name, failure.message) from None
