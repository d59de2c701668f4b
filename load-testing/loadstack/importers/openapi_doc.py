"""Reading an OpenAPI document safely: size-capped, UTF-8, JSON or YAML, bounded, typed access.

OpenAPI documents come from servers and files the user does not control, so
reading one must not hang, exhaust memory or end in a traceback: YAML aliases
may not expand beyond :data:`MAX_NODES` values, nesting is capped at
:data:`MAX_DEPTH`, ``$ref`` chains must end, and every field the importer
reads goes through :func:`obj`/:func:`seq`/… which raise an
:class:`~loadstack.importers.ImportProblem` naming the field
(``paths./carts.post.requestBody.content``) when it has the wrong type.
"""

from __future__ import annotations

import datetime
import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from loadstack import safety
from loadstack.importers import ImportProblem

MAX_NODES = 1_000_000
MAX_DEPTH = 200
MAX_REF_HOPS = 50


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return "a number"
    return "text"


def obj(value: Any, where: str, *, default: dict[str, Any] | None = None) -> dict[str, Any]:
    """``value`` as an object (``default`` when absent); a named error for anything else."""
    if value is None and default is not None:
        return default
    if not isinstance(value, dict):
        raise ImportProblem(f"{where}: expected an object, got {kind(value)}")
    return value


def seq(value: Any, where: str) -> list[Any]:
    """``value`` as a list (empty when absent)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ImportProblem(f"{where}: expected a list, got {kind(value)}")
    return value


def text(value: Any, where: str, default: str = "") -> str:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ImportProblem(f"{where}: expected text, got {kind(value)}")
    return str(value)


def number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ImportProblem(f"{where}: expected a number, got {kind(value)}")
    return float(value)


def count(value: Any, where: str, *, limit: int) -> int | None:
    """A non-negative whole number no larger than ``limit`` (a size a generator can honour)."""
    n = number(value, where)
    if n is None:
        return None
    if n < 0 or n != int(n):
        raise ImportProblem(f"{where}: expected a whole number >= 0, got {value!r}")
    if n > limit:
        raise ImportProblem(f"{where}: {int(n)} is more than the {limit} this importer generates")
    return int(n)


def pattern(value: Any, where: str) -> re.Pattern[str] | None:
    source = text(value, where) if value is not None else None
    if source is None:
        return None
    try:
        return re.compile(source)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ImportProblem(f"{where}: not a regular expression Python can use ({exc})") from None


def _too_big(source: str, max_bytes: int) -> ImportProblem:
    return ImportProblem(
        f"{source}: larger than the {max_bytes / 1048576:.0f} MB limit (raise it with --max-input-mb)"
    )


def _read(source: str, allow_remote: bool, max_bytes: int) -> bytes:
    if re.match(r"^https?://", source):
        try:
            safety.check_target(source, allow_remote=allow_remote, what="OpenAPI URL")
        except ValueError as exc:
            raise ImportProblem(str(exc)) from None
        try:
            with safety.urlopen(source, allow_remote=allow_remote, timeout=15) as resp:
                raw = resp.read(max_bytes + 1)
        except safety.RemoteTargetError as exc:
            raise ImportProblem(str(exc)) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ImportProblem(f"{source}: cannot fetch: {getattr(exc, 'reason', exc)}") from None
        if len(raw) > max_bytes:
            raise _too_big(source, max_bytes)
        return raw
    path = Path(source)
    try:
        if path.stat().st_size > max_bytes:
            raise _too_big(source, max_bytes)
        return path.read_bytes()
    except OSError as exc:
        raise ImportProblem(f"{source}: cannot read: {exc.strerror or exc}") from None


class _TooDeep(Exception):
    pass


def _expanded_size(node: yaml.Node, memo: dict[int, int], depth: int = 0) -> int:
    """How many values the node becomes once aliases are expanded (shared nodes counted each time)."""
    if depth > MAX_DEPTH:
        raise _TooDeep
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = MAX_NODES + 1  # a node that contains itself expands without end
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            total += _expanded_size(child, memo, depth + 1)
            if total > MAX_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            total += _expanded_size(key, memo, depth + 1) + _expanded_size(value, memo, depth + 1)
            if total > MAX_NODES:
                break
    memo[id(node)] = total
    return total


def _yaml(source: str, text_: str) -> Any:
    loader = yaml.SafeLoader(text_)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_NODES:
            raise ImportProblem(f"{source}: YAML aliases expand to more than {MAX_NODES} values")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ImportProblem(
            f"{source}{where}: neither JSON nor YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    except (RecursionError, _TooDeep):
        raise ImportProblem(f"{source}: nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()


def plain(value: Any, where: str = "") -> Any:
    """JSON values only (YAML dates become ISO text, keys become text); depth-capped, not recursive."""
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]
    while stack:
        node, parent, key, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ImportProblem(f"{where or 'document'}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            out: Any = dict.fromkeys(map(str, node))  # keys in document order, values filled below
            for k, v in node.items():
                stack.append((v, out, str(k), depth + 1))
        elif isinstance(node, list):
            out = [None] * len(node)
            for i, v in enumerate(node):
                stack.append((v, out, i, depth + 1))
        elif isinstance(node, datetime.date | datetime.datetime):
            out = node.isoformat()
        elif isinstance(node, bytes):
            out = node.decode("utf-8", "replace")
        elif node is None or isinstance(node, str | int | float | bool):
            out = node
        else:
            out = str(node)
        parent[key] = out
    return root[0]


def load(source: str, *, allow_remote: bool = False, max_bytes: int = 16 * 1024 * 1024) -> dict[str, Any]:
    """The OpenAPI document at a URL or path, as plain JSON values; :class:`ImportProblem` when unusable."""
    raw = _read(source, allow_remote, max_bytes)
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportProblem(
            f"{source}: not UTF-8 text (byte offset {exc.start}); OpenAPI documents are UTF-8 JSON or YAML"
        ) from None
    try:
        doc = json.loads(decoded)
    except RecursionError:
        raise ImportProblem(f"{source}: nested too deeply to read") from None
    except ValueError:
        doc = _yaml(source, decoded)
    doc = plain(doc, source)
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3."):
        if isinstance(doc, dict) and "swagger" in doc:
            raise ImportProblem(
                f"{source}: Swagger {str(doc['swagger'])[:20]} is not supported; convert it to OpenAPI 3 first"
            )
        raise ImportProblem(f"{source}: not an OpenAPI 3 document (no 'openapi: 3.x' field)")
    paths = doc.get("paths")
    if not isinstance(paths, dict):
        raise ImportProblem(f"{source}: paths: expected an object, got {kind(paths)}")
    if not paths:
        raise ImportProblem(f"{source}: the document has no paths")
    return doc


class Resolver:
    """Follows local ``$ref`` pointers (``#/components/schemas/Cart``); refuses remote refs and loops."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def __call__(self, node: Any, where: str = "") -> Any:
        hops = 0
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/"):
                raise ImportProblem(f"{where}: only local $ref are supported, found {str(ref)[:80]!r}")
            target: Any = self.doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if isinstance(target, dict) and part in target:
                    target = target[part]
                elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                    target = target[int(part)]
                else:
                    raise ImportProblem(f"{where}: $ref {ref[:80]!r} points nowhere")
            node, hops = target, hops + 1
            if hops > MAX_REF_HOPS:
                raise ImportProblem(f"{where}: $ref {ref[:80]!r} loops")
        return node

    def obj(self, node: Any, where: str, *, default: dict[str, Any] | None = None) -> dict[str, Any]:
        return obj(self(node, where), where, default=default)
