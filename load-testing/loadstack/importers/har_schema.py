"""The parts of a HAR file the importer reads, as typed models, so a malformed file is a named error.

HAR files come from browsers, proxies and hand-written tools, and all of them
take liberties; the models accept what real files do (numbers where strings are
expected, a missing ``log.version``, entries without a response, unknown extra
fields) and refuse what cannot be read (an entry that is ``null``, headers
given as an object, a ``time`` that is not a number).  Every refusal names the
field the way a person would look it up: ``log.entries[3].request.headers``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from loadstack.importers import ImportProblem

MAX_ERRORS_SHOWN = 5


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


Number = Annotated[float, BeforeValidator(_not_bool)]
Whole = Annotated[int, BeforeValidator(_not_bool)]


class _Lenient(BaseModel):
    # Numbers where text is expected are common in hand-written files; NaN/Infinity are not times.
    model_config = ConfigDict(
        extra="ignore", coerce_numbers_to_str=True, populate_by_name=True, allow_inf_nan=False
    )


class NameValue(_Lenient):
    name: str = ""
    value: str | None = ""


class Param(_Lenient):
    name: str = ""
    value: str | None = None
    fileName: str | None = None
    contentType: str | None = None


class PostData(_Lenient):
    mimeType: str | None = ""
    text: str | None = None
    params: list[Param] | None = None
    encoding: str | None = None  # not in HAR 1.2, but some tools base64-encode binary bodies


class Request(_Lenient):
    method: str
    url: str
    headers: list[NameValue] | None = None
    cookies: list[NameValue] | None = None
    postData: PostData | None = None
    bodySize: Number | None = None


class Content(_Lenient):
    mimeType: str | None = ""
    text: str | None = None
    encoding: str | None = None


class Response(_Lenient):
    status: Whole = Field(default=0, ge=-1, le=999)
    headers: list[NameValue] | None = None
    cookies: list[NameValue] | None = None
    content: Content | None = None
    redirectURL: str | None = ""


class Entry(_Lenient):
    startedDateTime: str | None = None
    time: Number | None = Field(default=None, ge=-1)
    request: Request
    response: Response | None = None
    resource_type: str | None = Field(default=None, alias="_resourceType")


class Creator(_Lenient):
    name: str | None = None
    version: str | None = None


class Log(_Lenient):
    version: str | None = None
    creator: Creator | None = None
    entries: list[Entry]


class Har(_Lenient):
    log: Log


_TYPES = {
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "a list",
    "string_type": "text",
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "finite_number": "a finite number",
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return f"the number {value!r}"[:60]
    return f"the text {str(value)[:40]!r}"


def field_path(loc: tuple[Any, ...]) -> str:
    """``("log", "entries", 3, "request")`` → ``log.entries[3].request``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = "_resourceType" if part == "resource_type" else str(part)
            out += f".{name}" if out else name
    return out


def _describe(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if kind in _TYPES:
        return f"expected {_TYPES[kind]}, got {_json_type(err.get('input'))}"
    if kind in ("greater_than_equal", "less_than_equal"):
        return f"out of range ({err['msg'].lower()}), got {_json_type(err.get('input'))}"
    return f"{err['msg']} (got {_json_type(err.get('input'))})"


def parse(doc: Any, source: str) -> Har:
    """The typed HAR; :class:`ImportProblem` naming every bad field (the first few)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("log"), dict):
        raise ImportProblem(
            f"{source}: no log object — not a HAR file (in DevTools: Network tab → 'Save all as HAR')"
        )
    if not isinstance(doc["log"].get("entries"), list):
        raise ImportProblem(
            f"{source}: no log.entries list — not a HAR file (in DevTools: Network tab → 'Save all as HAR')"
        )
    try:
        return Har.model_validate(doc)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        lines = [f"{source}: {field_path(e['loc'])}: {_describe(e)}" for e in errors[:MAX_ERRORS_SHOWN]]
        if len(errors) > MAX_ERRORS_SHOWN:
            lines.append(f"{source}: … and {len(errors) - MAX_ERRORS_SHOWN} more problems")
        raise ImportProblem("\n".join(lines)) from None
