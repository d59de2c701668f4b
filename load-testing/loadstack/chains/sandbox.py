"""The Jinja sandbox of chain templates, with a budget: no huge numbers or texts, no endless work.

Jinja's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` keeps templates
away from Python internals and from mutating values, but ``{{ 2 ** 20000 }}``,
``{{ "x" * 10**9 }}`` or ``{{ "x" | center(10**9) }}`` would still hang or
exhaust memory in the middle of a load test.  Here every arithmetic operator,
call and filter is checked *before* it runs (the size of its result is known
from its operands) and its result after; each evaluation has a time budget, and
a rendered text a size cap.  Going over any of them is a clear error naming the
template, never a hang, a MemoryError or a traceback.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum

MAX_INT_BITS = 10_000  # about 3000 digits: far beyond any id, amount or counter
MAX_LENGTH = 1_000_000  # characters of a text, items of a list, bytes of a rendered template
MAX_WIDTH = 10_000  # padding width in a format (%10000d, {:>10000}, center(10000))
MAX_SECONDS = 1.0  # one evaluation of a template or expression
_SIZED = (str, bytes, list, tuple, dict, set, frozenset)
# A printf conversion: flags, width (or * from the arguments), precision.
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
# Digits and nested fields inside a str.format replacement field: {:>99999} or {:{width}}.
_FORMAT_FIELD = re.compile(r"\{[^{}]*(\{|\d{5,})")


class BudgetError(SecurityError):
    """A template that asked for more than the budget (a Jinja error: callers already report those)."""


class _Clock:
    """The deadline of the evaluation in progress (rendering never yields to another greenlet)."""

    deadline: float | None = None


def tick() -> None:
    if _Clock.deadline is not None and time.monotonic() > _Clock.deadline:
        raise BudgetError(f"took longer than {MAX_SECONDS:g} s to evaluate (a loop or a huge value?)")


class budget:
    """``with budget():`` around one evaluation: starts its clock (nested evaluations share it)."""

    def __enter__(self) -> None:
        self._outer = _Clock.deadline
        if self._outer is None:
            _Clock.deadline = time.monotonic() + MAX_SECONDS

    def __exit__(self, *exc: Any) -> None:
        _Clock.deadline = self._outer


def checked(value: Any) -> Any:
    """``value`` when it is within the budget's sizes, else :class:`BudgetError`."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise BudgetError(f"an integer of more than {MAX_INT_BITS} bits")
    if isinstance(value, _SIZED) and len(value) > MAX_LENGTH:
        raise BudgetError(f"a value of more than {MAX_LENGTH} characters or items")
    return value


def check_result(value: Any) -> Any:
    """``value`` when its whole size is within the budget, else :class:`BudgetError`.

    A template that is one expression keeps its type, so its result is measured as what it becomes
    on the wire: every item of every nested list or mapping, and every character of every text,
    counted as often as it appears.  ``[[0] * 10000] * 10000`` is 10,000 references to one list
    (small in memory, each product within the budget) but 300 MB as JSON.  The walk stops as soon
    as the budget is exceeded, so measuring costs at most ``MAX_LENGTH`` steps.
    """
    size, stack = 0, [value]
    while stack:
        item = stack.pop()
        checked(item)
        if isinstance(item, str | bytes):
            size += len(item)
        elif isinstance(item, dict):
            size += len(item)
            stack += item.keys()
            stack += item.values()
        elif isinstance(item, list | tuple | set | frozenset):
            size += len(item)
            stack += item
        else:
            size += 1
        if size > MAX_LENGTH:
            raise BudgetError(f"evaluates to a value of more than {MAX_LENGTH} characters or items in all")
    return value


def _length(value: Any) -> int | None:
    return len(value) if isinstance(value, _SIZED) else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_power(base: Any, exponent: Any) -> None:
    grows = _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1
    if grows and (exponent > MAX_INT_BITS or base.bit_length() * exponent > MAX_INT_BITS):
        raise BudgetError(f"{base} ** {exponent} has more than {MAX_INT_BITS} bits")


def _check_product(left: Any, right: Any) -> None:
    if _is_int(left) and _is_int(right):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise BudgetError(f"a product of more than {MAX_INT_BITS} bits")
        return
    for seq, times in ((left, right), (right, left)):
        size = _length(seq)
        if size is not None and _is_int(times) and size * max(times, 0) > MAX_LENGTH:
            raise BudgetError(f"repeating a value to more than {MAX_LENGTH} characters or items")


def _check_sum(left: Any, right: Any) -> None:
    a, b = _length(left), _length(right)
    if a is not None and b is not None and a + b > MAX_LENGTH:
        raise BudgetError(f"a value of more than {MAX_LENGTH} characters or items")


def check_printf(fmt: Any) -> None:
    """``"%10d" % x`` and the ``format`` filter: no width from the arguments, none too wide."""
    if not isinstance(fmt, str):
        return
    for match in _PRINTF.finditer(fmt):
        for part in match.groups():
            if part == "*":
                raise BudgetError("a width or precision from the arguments (%*d) is not supported")
            if part is not None and int(part) > MAX_WIDTH:
                raise BudgetError(f"a width or precision above {MAX_WIDTH} in {match.group(0)!r}")


def check_str_format(fmt: Any) -> None:
    """``"{:>10}".format(x)``: no nested (computed) widths, none too wide."""
    if isinstance(fmt, str) and _FORMAT_FIELD.search(fmt):
        raise BudgetError(f"a format width above {MAX_WIDTH} or computed from an argument")


def _width(value: Any, what: str) -> None:
    if _is_int(value) and value > MAX_WIDTH:
        raise BudgetError(f"{what} {value} is above {MAX_WIDTH}")


def _check_replace(text: Any, old: Any, new: Any, count: Any = -1) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str) and len(new) > len(old):
        hits = text.count(old) if old else len(text) + 1
        if _is_int(count) and count >= 0:
            hits = min(hits, count)
        if len(text) + hits * (len(new) - len(old)) > MAX_LENGTH:
            raise BudgetError(f"replacing would make a text of more than {MAX_LENGTH} characters")


def _precheck_method(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Methods of text values that can make their result far larger than their input."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if not isinstance(owner, str | bytes):
        if name in ("format", "format_map") and isinstance(getattr(obj, "__wrapped__", None), Callable):
            check_str_format(getattr(obj.__wrapped__, "__self__", None))
        return
    if name in ("center", "ljust", "rjust", "zfill") and args:
        _width(args[0], "a width of")
    elif name == "expandtabs":
        size = (args[0] if args else kwargs.get("tabsize", 8)) or 0
        if _is_int(size) and len(owner) * max(size, 1) > MAX_LENGTH:
            raise BudgetError(f"expanding tabs to more than {MAX_LENGTH} characters")
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, *args[:3])
    elif name in ("format", "format_map"):
        check_str_format(owner)


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter checked before (its size-changing arguments) and after (its result's size)."""

    @functools.wraps(func)  # keeps jinja_pass_arg: Jinja passes the environment/context as before
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        values = [a for a in args if not isinstance(a, jinja2.Environment | Context | EvalContext)]
        if values:
            value, rest = values[0], values[1:]
            if name == "center" and rest:
                _width(rest[0], "a width of")
            elif name == "center":
                _width(kwargs.get("width", 80), "a width of")
            elif name == "indent":
                width = rest[0] if rest else kwargs.get("width", 4)
                if isinstance(width, str):
                    lines = str(value).count("\n") + 1
                    if len(width) * lines > MAX_LENGTH:
                        raise BudgetError(f"indenting to more than {MAX_LENGTH} characters")
                else:
                    _width(width, "an indent of")
            elif name == "format":
                check_printf(value)
            elif name == "replace" and len(rest) >= 2:
                _check_replace(str(value), *rest[:3])
            elif name == "wordwrap":
                width = rest[0] if rest else kwargs.get("width", 79)
                if _is_int(width) and width < 1:
                    raise BudgetError("a wrap width below 1")
        return checked(func(*args, **kwargs))

    return guarded


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if not all(_is_int(v) and 0 <= v <= 1000 for v in (n, min, max)):
        raise BudgetError("lipsum(n, html, min, max): n, min and max are 0 to 1000")
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox plus the budget of this module (see the module docstring)."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.globals["lipsum"] = _lipsum

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        tick()
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_product(left, right)
        elif operator == "+":
            _check_sum(left, right)
        elif operator == "%":
            check_printf(left)
        return checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        tick()
        _precheck_method(__obj, args, kwargs)
        return checked(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        tick()
        return super().getitem(obj, argument)


def add_filters(env: BoundedSandbox, filters: dict[str, Callable[..., Any]]) -> None:
    """More filters, guarded like Jinja's own."""
    env.filters.update({name: _guard_filter(name, f) for name, f in filters.items()})


def refuse_unbounded_statements(ast: nodes.Node) -> str | None:
    """Why a parsed template cannot be a chain value: loops in loops, macros (recursion); else None."""
    for node in ast.find_all((nodes.Macro, nodes.CallBlock)):
        kind = "macro" if isinstance(node, nodes.Macro) else "call block"
        return f"a {kind} is not supported in chain templates (line {node.lineno})"
    for loop in ast.find_all(nodes.For):
        for inner in loop.find_all(nodes.For):
            return f"a loop inside a loop is not supported in chain templates (line {inner.lineno})"
    return None


def render_bounded(template: jinja2.Template, scope: dict[str, Any]) -> str:
    """``template.render(**scope)`` within the budget: the text is cut off (an error) at MAX_LENGTH."""
    out: list[str] = []
    size = 0
    with budget():
        for chunk in template.generate(**scope):
            size += len(chunk)
            if size > MAX_LENGTH:
                raise BudgetError(f"renders to more than {MAX_LENGTH} characters")
            out.append(chunk)
    return "".join(out)
