"""Example values from JSON Schema (OpenAPI 3.0/3.1), for request bodies and parameters.

Why not a property-based generator such as hypothesis-jsonschema: those hunt for
edge cases (empty strings, huge numbers, odd Unicode), which is right for
fuzzing and wrong for load, where every request should be an ordinary, valid
one.  So: the spec's own ``example``/``default``/``enum`` first, then a plain
value inside the documented bounds, regex-constrained strings via ``rstr``
(made for exactly that), and fresh values where replays would collide
(e-mail addresses, passwords).  Deterministic for a given seed.

Schemas are input like any other: a field of the wrong type is an error naming
it, sizes are capped (:data:`MAX_ITEMS`, :data:`MAX_LENGTH`, and no more than
:data:`MAX_VALUES` values per body), recursion stops at :data:`MAX_DEPTH`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

import rstr

from loadstack.importers import ImportProblem
from loadstack.importers.model import Generated, Ref
from loadstack.importers.openapi_doc import count, number, obj, pattern, seq

MAX_DEPTH = 12
MAX_ITEMS = 100
MAX_LENGTH = 65536
MAX_VALUES = 20000
_EMAIL_NAME = re.compile(r"e-?mail", re.I)
_SECRET_NAME = re.compile(r"(password|passwd|passphrase|secret)", re.I)
_NAME_HINTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"currency", re.I), "EUR"),
    (re.compile(r"country", re.I), "DE"),
    (re.compile(r"lang|locale", re.I), "en"),
    (re.compile(r"^(full_?)?name$|first_?name|last_?name", re.I), "Ada Lovelace"),
    (re.compile(r"sku|code|slug", re.I), "sku-1"),
    (re.compile(r"phone", re.I), "+4930123456"),
    (re.compile(r"url|uri|link", re.I), "https://example.test/"),
]
_FORMATS = {
    "date-time": "2026-01-01T12:00:00Z",
    "date": "2026-01-01",
    "time": "12:00:00",
    "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "uri": "https://example.test/",
    "url": "https://example.test/",
    "hostname": "example.test",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "byte": "bG9hZHN0YWNr",
}
_REPEAT = re.compile(r"[{,](\d{1,12})")
_KINDS = ("object", "array", "integer", "number", "boolean", "null", "string")
# A sample of what the e-mail template renders to, for checking it against a pattern.
_EMAIL_SAMPLE = "lt-20260101T000000Z-abc123-0-1a2b3c4d@example.test"


class Values:
    """Builds example values; ``generated`` collects the per-iteration variables it introduced."""

    def __init__(
        self,
        resolve: Callable[..., Any],
        *,
        seed: int = 1234,
        ids: dict[str, str] | None = None,
    ) -> None:
        self._resolve = resolve
        self._rstr = rstr.Rstr(random.Random(seed))
        self.ids = ids or {}  # property name -> variable holding an id created earlier (order_id)
        self.generated: dict[str, Generated] = {}
        self._made = 0

    def for_schema(
        self,
        schema: Any,
        name: str = "",
        depth: int = 0,
        *,
        where: str = "schema",
        also: set[str] = frozenset(),
    ) -> Any:
        """A value for ``schema``; ``also``: properties to fill even though not required (top level)."""
        if depth == 0:
            self._made = 0
        self._made += 1
        if self._made > MAX_VALUES:
            raise ImportProblem(f"{where}: the schema asks for more than {MAX_VALUES} values in one body")
        if depth > MAX_DEPTH or schema is None or schema is True:
            return None  # too deep, absent, or `true` (JSON Schema 2020-12: anything goes)
        schema = obj(self._resolve(schema, where), where)
        if name in self.ids:
            return Ref(self.ids[name])
        for key in ("example", "default", "const"):
            if key in schema:
                return schema[key]
        examples = schema.get("examples")
        if isinstance(examples, list) and examples:
            return examples[0]
        enum = seq(schema.get("enum"), f"{where}.enum")
        if enum:
            return next((v for v in enum if v is not None), enum[0])
        if "allOf" in schema:
            merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
            own = {k: v for k, v in schema.items() if k != "allOf"}
            parts = seq(schema["allOf"], f"{where}.allOf")
            for i, raw in enumerate([*parts, own]):
                part = obj(self._resolve(raw, f"{where}.allOf[{i}]"), f"{where}.allOf[{i}]")
                merged["properties"].update(
                    obj(part.get("properties"), f"{where}.allOf[{i}].properties", default={})
                )
                merged["required"] += seq(part.get("required"), f"{where}.allOf[{i}].required")
                for k in ("type", "format", "minimum", "maximum", "pattern", "minLength", "maxLength"):
                    if k in part:
                        merged[k] = part[k]
            return self.for_schema(merged, name, depth + 1, where=where, also=also)
        for key in ("oneOf", "anyOf"):
            if key in schema:
                options = [self._resolve(o, f"{where}.{key}") for o in seq(schema[key], f"{where}.{key}")]
                options = [o for o in options if isinstance(o, dict)]
                chosen = next((o for o in options if o.get("type") != "null"), options[0] if options else {})
                return self.for_schema(chosen, name, depth + 1, where=f"{where}.{key}", also=also)
        kind = schema.get("type")
        if isinstance(kind, list):  # OpenAPI 3.1: ["string", "null"]
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "string"
        if kind not in _KINDS:
            raise ImportProblem(f"{where}.type: {str(kind)[:40]!r} is not a JSON Schema type")
        if kind == "object":
            return self._object(schema, depth, where, also)
        return getattr(self, f"_{kind}")(schema, name, depth, where)

    def _object(self, schema: dict[str, Any], depth: int, where: str, also: set[str]) -> dict[str, Any]:
        required = {str(r) for r in seq(schema.get("required"), f"{where}.required")}
        out: dict[str, Any] = {}
        props = obj(schema.get("properties"), f"{where}.properties", default={})
        for prop, sub in props.items():
            sub_resolved = self._resolve(sub, f"{where}.properties.{prop}") if isinstance(sub, dict) else {}
            sub_resolved = sub_resolved if isinstance(sub_resolved, dict) else {}
            wanted = (
                prop in required
                or prop in also
                or prop in self.ids
                or any(k in sub_resolved for k in ("example", "examples"))
            )
            if wanted and not sub_resolved.get("readOnly"):
                out[prop] = self.for_schema(sub, prop, depth + 1, where=f"{where}.properties.{prop}")
        return out

    def _array(self, schema: dict[str, Any], name: str, depth: int, where: str) -> list[Any]:
        n = max(1, count(schema.get("minItems"), f"{where}.minItems", limit=MAX_ITEMS) or 1)
        items = schema.get("items") or {}
        return [self.for_schema(items, name, depth + 1, where=f"{where}.items") for _ in range(n)]

    def _integer(self, schema: dict[str, Any], name: str, depth: int, where: str) -> int:
        return int(self._number(schema, name, depth, where, start=1))

    def _number(
        self, schema: dict[str, Any], name: str, depth: int, where: str, start: float = 9.99
    ) -> float:
        low, high = (
            number(schema.get("minimum"), f"{where}.minimum"),
            number(schema.get("maximum"), f"{where}.maximum"),
        )
        ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        # OpenAPI 3.0 writes exclusive bounds as booleans next to minimum/maximum; 3.1 as numbers.
        ex_low = (
            (low if ex_low else None)
            if isinstance(ex_low, bool)
            else number(ex_low, f"{where}.exclusiveMinimum")
        )
        ex_high = (
            (high if ex_high else None)
            if isinstance(ex_high, bool)
            else number(ex_high, f"{where}.exclusiveMaximum")
        )
        value = float(start)
        if low is not None and value < low:
            value = low
        if ex_low is not None and value <= ex_low:
            value = ex_low + 1
        if high is not None and value > high:
            value = high
        if ex_high is not None and value >= ex_high:
            value = ex_high - (1 if schema.get("type") == "integer" else 0.01)
        step = number(schema.get("multipleOf"), f"{where}.multipleOf")
        if step:
            value = round(value / step) * step or step
        if value != value or value in (float("inf"), float("-inf")) or abs(value) > 1e300:
            raise ImportProblem(f"{where}: the bounds leave no usable number")
        return value

    def _boolean(self, schema: dict[str, Any], name: str, depth: int, where: str) -> bool:
        return True

    def _null(self, schema: dict[str, Any], name: str, depth: int, where: str) -> None:
        return None

    def _string(self, schema: dict[str, Any], name: str, depth: int, where: str) -> Any:
        regex = pattern(schema.get("pattern"), f"{where}.pattern")
        fmt = schema.get("format")
        low = count(schema.get("minLength"), f"{where}.minLength", limit=MAX_LENGTH) or 0
        high = count(schema.get("maxLength"), f"{where}.maxLength", limit=2**62)
        emailish = fmt == "email" or _EMAIL_NAME.search(name)
        if emailish and (regex is None or regex.search(_EMAIL_SAMPLE)):
            return self._fresh(name or "email", "email")
        secretish = fmt == "password" or _SECRET_NAME.search(name)
        if secretish and regex is None and (high if high is not None else 64) >= 39:
            return self._fresh(name or "password", "secret")
        candidates = [_FORMATS[fmt]] if isinstance(fmt, str) and fmt in _FORMATS else []
        candidates += [hint for rx, hint in _NAME_HINTS if rx.search(name)]
        candidates.append("example")
        for candidate in candidates:
            fitted = _fit(candidate, low, high)
            # Long strings are not matched against user patterns (backtracking could take forever).
            if fitted is not None and (regex is None or (len(fitted) <= 256 and regex.search(fitted))):
                return fitted
        if regex is not None:
            if any(int(n) > MAX_LENGTH for n in _REPEAT.findall(regex.pattern)):
                raise ImportProblem(f"{where}.pattern: repeats more than {MAX_LENGTH} times")
            for _ in range(50):
                try:
                    value = self._rstr.xeger(regex.pattern)
                except (re.error, RecursionError, ValueError, IndexError, OverflowError, MemoryError):
                    break
                if _fit(value, low, high) == value:
                    return value
            raise ImportProblem(f"{where}.pattern: cannot generate a value for {regex.pattern[:80]!r}")
        return _fit("example", low, high) or "x"

    def _fresh(self, name: str, kind: str) -> Ref:
        var = re.sub(r"\W", "_", name, flags=re.ASCII).lower()
        if not var or var[0].isdigit():
            var = "v_" + var
        self.generated.setdefault(var, Generated(kind, note=f"fresh {kind} per iteration"))
        return Ref(var)


def _fit(value: str, low: int, high: int | None) -> str | None:
    if len(value) < low:
        value = value + "x" * (low - len(value))
    if high is not None and len(value) > high:
        value = value[:high]
        if len(value) < low:
            return None
    return value
