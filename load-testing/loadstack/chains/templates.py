"""Templates (``"Bearer {{ vars.token }}"``) and expressions (``vars.amount > 200``) in chains.

Both are Jinja2, evaluated in Jinja's immutable sandbox with a budget
(:mod:`loadstack.chains.sandbox`): no Python ``eval`` of user text, no access
to dunder attributes or unsafe callables, no huge numbers or texts, no endless
loops; undefined names are errors.  The grammar is Jinja's expression language:
literals, ``vars.x`` / ``last.json.id`` / ``a["k"]`` / ``a[0]``, arithmetic,
comparisons, ``and``/``or``/``not``, ``in``, filters (``x | float``,
``x | lower``, ``items | length``) and the tests (``x is none``).  See
docs/chains.md for the names available in a chain.

A string that is exactly one ``{{ expression }}`` renders to the expression's
value with its type (``amount: "{{ seed.amount }}"`` stays a number); any
other string renders to text.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import jinja2
from jinja2 import nodes

from loadstack import replay
from loadstack.chains import sandbox

_SINGLE = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.S)


class TemplateError(ValueError):
    """A template or expression that does not parse, or fails to evaluate."""


@cache
def environment() -> sandbox.BoundedSandbox:
    env = sandbox.BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=False)
    # html_input, cookie: values a page or Set-Cookie handed out
    sandbox.add_filters(env, replay.FILTERS)
    return env


# What evaluating user text may raise besides Jinja's own errors (a bad operand, a missing key, ...).
EVALUATION_ERRORS = (TypeError, ValueError, ArithmeticError, LookupError, AttributeError, RecursionError)


def _referenced(ast: nodes.Node) -> set[str]:
    """Dotted references such as ``vars.order_id`` or ``seed`` used by a parsed template/expression."""
    found: set[str] = set()
    for node in ast.find_all(nodes.Name):
        if node.ctx == "load":
            found.add(node.name)
    for node in ast.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name):
            found.add(f"{node.node.name}.{node.attr}")
    for node in ast.find_all(nodes.Getitem):
        if (
            isinstance(node.node, nodes.Name)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            found.add(f"{node.node.name}.{node.arg.value}")
    return found


class Expression:
    """A compiled expression; ``Expression("vars.amount > 200")(scope)``."""

    __slots__ = ("_fn", "references", "source")

    def __init__(self, source: str) -> None:
        self.source = source.strip()
        env = environment()
        try:
            ast = env.parse(f"{{{{ {self.source} }}}}")
            self._fn = env.compile_expression(self.source, undefined_to_none=False)
            self.references = _referenced(ast)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"bad expression {_short(self.source)!r}: {exc.message}") from None
        except RecursionError:
            raise TemplateError(f"bad expression {_short(self.source)!r}: nested too deeply") from None

    def __call__(self, scope: dict[str, Any]) -> Any:
        try:
            with sandbox.budget():
                value = sandbox.check_result(self._fn(**scope))
        except jinja2.TemplateError as exc:  # undefined names, sandbox violations, the budget
            raise TemplateError(f"{_short(self.source)}: {exc.message}") from None
        except EVALUATION_ERRORS as exc:
            raise TemplateError(f"{_short(self.source)}: {type(exc).__name__}: {_short(str(exc))}") from None
        if isinstance(value, jinja2.Undefined):
            raise TemplateError(f"{self.source}: undefined")
        return value

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


class Template:
    """A string that may contain ``{{ … }}``; a constant when it does not."""

    __slots__ = ("_expr", "_template", "references", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._expr: Expression | None = None
        self._template: jinja2.Template | None = None
        self.references: set[str] = set()
        if "{{" not in source and "{%" not in source:
            return
        single = _SINGLE.match(source)
        if single and "}}" not in single["expr"] and "{{" not in single["expr"]:
            self._expr = Expression(single["expr"])
            self.references = self._expr.references
            return
        env = environment()
        try:
            ast = env.parse(source)
            unbounded = sandbox.refuse_unbounded_statements(ast)
            if unbounded:
                raise TemplateError(f"bad template {_short(source)!r}: {unbounded}")
            self.references = _referenced(ast)
            self._template = env.from_string(ast)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"bad template {_short(source)!r}: {exc.message}") from None
        except RecursionError:
            raise TemplateError(f"bad template {_short(source)!r}: nested too deeply") from None

    def render(self, scope: dict[str, Any]) -> Any:
        if self._expr is not None:
            return self._expr(scope)
        if self._template is None:
            return self.source
        try:
            return sandbox.render_bounded(self._template, scope)
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{_short(self.source)!r}: {exc.message}") from None
        except EVALUATION_ERRORS as exc:
            raise TemplateError(
                f"{_short(self.source)!r}: {type(exc).__name__}: {_short(str(exc))}"
            ) from None


def _short(text: str, limit: int = 200) -> str:
    """User text in a message: long templates and error texts are cut (a message is one line)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compile_value(value: Any) -> Any:
    """Turn every string inside a JSON-like value into a :class:`Template` (once, at load time)."""
    if isinstance(value, str):
        return Template(value)
    if isinstance(value, dict):
        return {k: compile_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_value(v) for v in value]
    return value


def render_value(value: Any, scope: dict[str, Any]) -> Any:
    if isinstance(value, Template):
        return value.render(scope)
    if isinstance(value, dict):
        return {k: render_value(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, scope) for v in value]
    return value


def references(value: Any) -> set[str]:
    """All references of the templates inside a compiled value."""
    if isinstance(value, Template | Expression):
        return set(value.references)
    if isinstance(value, dict):
        return set().union(*(references(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(references(v) for v in value)) if value else set()
    return set()
