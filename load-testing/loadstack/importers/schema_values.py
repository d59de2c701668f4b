"""Example values from JSON Schema (OpenAPI 3.0/3.1), for request bodies and parameters.

Why not a property-based generator such as hypothesis-jsonschema: those hunt for
edge cases (empty strings, huge numbers, odd Unicode), which is right for
fuzzing and wrong for load, where every request should be an ordinary, valid
one.  So: the spec's own ``example``/``default``/``enum`` first, then a plain
value inside the documented bounds, regex-constrained strings via ``rstr``
(made for exactly that), and fresh values where replays would collide
(e-mail addresses, passwords).  Deterministic for a given seed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

import rstr

from loadstack.importers import ImportProblem
from loadstack.importers.model import Generated, Ref

_MAX_DEPTH = 12
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
# A sample of what the e-mail template renders to, for checking it against a pattern.
_EMAIL_SAMPLE = "lt-20260101T000000Z-abc123-0-1a2b3c4d@example.test"


class Values:
    """Builds example values; ``generated`` collects the per-iteration variables it introduced."""

    def __init__(
        self,
        resolve: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        seed: int = 1234,
        ids: dict[str, str] | None = None,
    ) -> None:
        self._resolve = resolve
        self._rstr = rstr.Rstr(random.Random(seed))
        self.ids = ids or {}  # property name -> variable holding an id created earlier (order_id)
        self.generated: dict[str, Generated] = {}

    def for_schema(self, schema: Any, name: str = "", depth: int = 0) -> Any:
        if depth > _MAX_DEPTH or not isinstance(schema, dict):
            return None
        schema = self._resolve(schema)
        if name in self.ids:
            return Ref(self.ids[name])
        for key in ("example", "default", "const"):
            if key in schema:
                return schema[key]
        if isinstance(schema.get("examples"), list) and schema["examples"]:
            return schema["examples"][0]
        if schema.get("enum"):
            return next((v for v in schema["enum"] if v is not None), schema["enum"][0])
        if "allOf" in schema:
            merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
            own = {k: v for k, v in schema.items() if k != "allOf"}
            for part in [*(self._resolve(p) for p in schema["allOf"]), own]:
                merged["properties"].update(part.get("properties") or {})
                merged["required"] += part.get("required") or []
                for k in ("type", "format", "minimum", "maximum", "pattern", "minLength", "maxLength"):
                    if k in part:
                        merged[k] = part[k]
            return self.for_schema(merged, name, depth + 1)
        for key in ("oneOf", "anyOf"):
            if key in schema:
                options = [self._resolve(o) for o in schema[key]]
                chosen = next((o for o in options if o.get("type") != "null"), options[0] if options else {})
                return self.for_schema(chosen, name, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):  # OpenAPI 3.1: ["string", "null"]
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "string"
        return getattr(self, f"_{kind}", self._string)(schema, name, depth)

    def _object(self, schema: dict[str, Any], name: str, depth: int) -> dict[str, Any]:
        required = set(schema.get("required") or [])
        out: dict[str, Any] = {}
        for prop, sub in (schema.get("properties") or {}).items():
            sub_resolved = self._resolve(sub) if isinstance(sub, dict) else {}
            wanted = (
                prop in required
                or prop in self.ids
                or any(k in sub_resolved for k in ("example", "examples"))
            )
            if wanted and not sub_resolved.get("readOnly"):
                out[prop] = self.for_schema(sub, prop, depth + 1)
        return out

    def _array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        count = max(1, int(schema.get("minItems") or 1))
        return [self.for_schema(schema.get("items") or {}, name, depth + 1) for _ in range(count)]

    def _integer(self, schema: dict[str, Any], name: str, depth: int) -> int:
        return int(self._number(schema, name, depth, start=1))

    def _number(self, schema: dict[str, Any], name: str, depth: int, start: float = 9.99) -> float:
        low, high = schema.get("minimum"), schema.get("maximum")
        ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        # OpenAPI 3.0 writes exclusive bounds as booleans next to minimum/maximum; 3.1 as numbers.
        if isinstance(ex_low, bool):
            ex_low = low if ex_low else None
        if isinstance(ex_high, bool):
            ex_high = high if ex_high else None
        value = float(start)
        if low is not None and value < low:
            value = float(low)
        if ex_low is not None and value <= ex_low:
            value = float(ex_low) + 1
        if high is not None and value > high:
            value = float(high)
        if ex_high is not None and value >= ex_high:
            value = float(ex_high) - (1 if schema.get("type") == "integer" else 0.01)
        step = schema.get("multipleOf")
        if step:
            value = round(value / step) * step or step
        return value

    def _boolean(self, schema: dict[str, Any], name: str, depth: int) -> bool:
        return True

    def _null(self, schema: dict[str, Any], name: str, depth: int) -> None:
        return None

    def _string(self, schema: dict[str, Any], name: str, depth: int) -> Any:
        pattern = schema.get("pattern")
        fmt = schema.get("format")
        emailish = fmt == "email" or _EMAIL_NAME.search(name)
        if emailish and (pattern is None or re.search(pattern, _EMAIL_SAMPLE)):
            return self._fresh(name or "email", "email")
        secretish = fmt == "password" or _SECRET_NAME.search(name)
        if secretish and pattern is None and int(schema.get("maxLength") or 64) >= 39:
            return self._fresh(name or "password", "secret")
        candidates = [_FORMATS[fmt]] if fmt in _FORMATS else []
        candidates += [hint for rx, hint in _NAME_HINTS if rx.search(name)]
        candidates.append("example")
        for candidate in candidates:
            fitted = _fit(candidate, schema)
            if fitted is not None and (pattern is None or re.search(pattern, fitted)):
                return fitted
        if pattern is not None:
            for _ in range(50):
                value = self._rstr.xeger(pattern)
                if _fit(value, schema) == value:
                    return value
            raise ImportProblem(f"{name or 'a string'}: cannot generate a value for pattern {pattern!r}")
        return _fit("example", schema) or "x"

    def _fresh(self, name: str, kind: str) -> Ref:
        var = re.sub(r"\W", "_", name).lower()
        self.generated.setdefault(var, Generated(kind, note=f"fresh {kind} per iteration"))
        return Ref(var)


def _fit(value: str, schema: dict[str, Any]) -> str | None:
    low, high = int(schema.get("minLength") or 0), schema.get("maxLength")
    if len(value) < low:
        value = value + "x" * (low - len(value))
    if high is not None and len(value) > int(high):
        value = value[: int(high)]
        if len(value) < low:
            return None
    return value
