"""Scenarios from an OpenAPI 3 document: one HTTP call per operation, with ids flowing between them.

REST convention supplies the data flow: ``POST /orders`` creates what
``GET /orders/{order_id}`` reads, so the create call saves ``$.id`` as
``order_id`` and every path parameter or body field of that name uses it.
Calls are ordered so that creators run before their readers (deletes last).

What counts as success: the 2xx statuses the operation documents, plus its
documented 4xx answers (a login with made-up credentials may legitimately be
401) — except 422, which means the generated request itself is wrong.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from loadstack import safety
from loadstack.importers import ImportProblem
from loadstack.importers.model import Call, Capture, Ref, Scenario, refs_in, singular, step_name
from loadstack.importers.schema_values import Values

METHODS = ("get", "post", "put", "patch", "delete")
SKIPPED_HEADERS = {"authorization", "x-loadstack-run-id", "cookie", "user-agent", "accept", "content-type"}
NEVER_EXPECTED = {422}
FALLBACK_SUCCESS = [200, 201, 202, 204]
_PARAM = re.compile(r"\{([^}/]+)\}")


def load(source: str, *, allow_remote: bool = False, max_bytes: int = 16 * 1024 * 1024) -> dict[str, Any]:
    """The OpenAPI document at a URL or path; :class:`ImportProblem` saying what is wrong."""
    if re.match(r"^https?://", source):
        try:
            safety.check_target(source, allow_remote=allow_remote, what="OpenAPI URL")
        except ValueError as exc:
            raise ImportProblem(str(exc)) from None
        try:
            with urllib.request.urlopen(source, timeout=15) as resp:
                text = resp.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as exc:
            raise ImportProblem(f"{source}: cannot fetch: {getattr(exc, 'reason', exc)}") from None
    else:
        try:
            text = Path(source).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise ImportProblem(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            raise ImportProblem(
                f"{source}{where}: neither JSON nor YAML ({getattr(exc, 'problem', exc)})"
            ) from None
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3."):
        if isinstance(doc, dict) and "swagger" in doc:
            raise ImportProblem(
                f"{source}: Swagger {doc['swagger']} is not supported; convert it to OpenAPI 3 first"
            )
        raise ImportProblem(f"{source}: not an OpenAPI 3 document (no 'openapi: 3.x' field)")
    if not isinstance(doc.get("paths"), dict) or not doc["paths"]:
        raise ImportProblem(f"{source}: the document has no paths")
    return doc


class _Resolver:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def __call__(self, node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/"):
                raise ImportProblem(f"only local $ref are supported, found {ref!r}")
            target: Any = self.doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise ImportProblem(f"$ref {ref!r} points nowhere")
                target = target[part]
            node, seen = target, seen + 1
            if seen > 50:
                raise ImportProblem(f"$ref {ref!r} loops")
        return node


def _statuses(op: dict[str, Any]) -> list[int]:
    documented = [int(k) for k in (op.get("responses") or {}) if str(k).isdigit()]
    success = [s for s in documented if 200 <= s < 300] or FALLBACK_SUCCESS
    expected_errors = [s for s in documented if 400 <= s < 500 and s not in NEVER_EXPECTED]
    return sorted(set(success + expected_errors))


def _collection(path: str) -> str | None:
    """``/orders/{order_id}`` → ``/orders``; None when the path does not end in a parameter."""
    head, _, last = path.rstrip("/").rpartition("/")
    return head if _PARAM.fullmatch(last) else None


def _body_schema(op: dict[str, Any], resolve: _Resolver) -> tuple[str | None, Any]:
    body = resolve(op.get("requestBody") or {})
    content = body.get("content") or {}
    for mime, media in content.items():
        if mime == "application/json" or mime.endswith("+json"):
            return "json", media
    if "application/x-www-form-urlencoded" in content:
        return "form", content["application/x-www-form-urlencoded"]
    if content:
        return "unsupported:" + ", ".join(content), None
    return None, None


def scenario_from(doc: dict[str, Any], *, name: str | None = None, seed: int = 1234) -> Scenario:
    resolve = _Resolver(doc)
    info = doc.get("info") or {}
    title = str(info.get("title") or "api")
    notes: list[str] = []

    # Creators: POST on a collection whose items have their own path (/orders + /orders/{id}).
    paths: dict[str, Any] = doc["paths"]
    item_paths = {c: p for p in paths if (c := _collection(p)) is not None}
    creates: dict[str, str] = {}  # collection path -> variable
    taken_vars: set[str] = set()
    for path, item in paths.items():
        if isinstance(item, dict) and "post" in item and path.rstrip("/") in item_paths:
            last = [s for s in path.split("/") if s and not _PARAM.fullmatch(s)][-1]
            var = f"{singular(last)}_id".replace("-", "_")
            if var not in taken_vars:
                creates[path.rstrip("/")] = var
                taken_vars.add(var)
    ids = {var: var for var in creates.values()}

    ops: list[tuple[str, str, dict[str, Any], list[dict[str, Any]]]] = []
    for path, item in paths.items():
        item = resolve(item)
        common = [resolve(p) for p in item.get("parameters") or []]
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                own = [resolve(p) for p in op.get("parameters") or []]
                merged = {(p.get("in"), p.get("name")): p for p in [*common, *own]}
                ops.append((path, method, op, list(merged.values())))

    steps: set[str] = set()
    values = Values(resolve, seed=seed, ids=ids)
    calls: list[tuple[Call, set[str], set[str]]] = []  # call, variables needed, variables produced
    for path, method, op, params in ops:
        kind, media = _body_schema(op, resolve)
        if kind and kind.startswith("unsupported:"):
            notes.append(
                f"skipped {method.upper()} {path}: request body {kind.split(':', 1)[1]} not generated"
            )
            continue
        needed: set[str] = set()
        segments: list[str | Ref] = []
        for segment in (s for s in path.split("/") if s):
            match = _PARAM.fullmatch(segment)
            if not match:
                segments.append(segment)
                continue
            pname = match[1]
            var = ids.get(pname) or (creates.get(_collection(path) or "") if path.endswith(segment) else None)
            if var:
                segments.append(Ref(var))
                needed.add(var)
            else:
                spec = next((p for p in params if p.get("in") == "path" and p.get("name") == pname), {})
                segments.append(str(values.for_schema(spec.get("schema") or {"type": "string"}, pname)))
        query: list[tuple[str, Any]] = []
        headers: dict[str, Any] = {}
        for p in params:
            where, pname = p.get("in"), str(p.get("name"))
            wanted = p.get("required") or "example" in p or "example" in (p.get("schema") or {})
            if not wanted:
                continue
            value = p["example"] if "example" in p else values.for_schema(p.get("schema") or {}, pname)
            if where == "query":
                query.append((pname, value))
            elif where == "header" and pname.lower() not in SKIPPED_HEADERS:
                headers[pname] = value if isinstance(value, Ref) else str(value)
        call = Call(
            method=method.upper(), path=segments, name=_stat_name(path), step="", query=query, headers=headers
        )
        call.step = step_name(call.method, call.name, steps)
        if media is not None:
            schema = media.get("schema") or {}
            example = media.get("example")
            body = example if example is not None else values.for_schema(schema)
            if kind == "json":
                call.json = body
            else:
                call.form = list(body.items()) if isinstance(body, dict) else []
        needed |= refs_in(call.json) | refs_in(call.form) | refs_in(query)
        needed -= set(values.generated)
        call.expect_status = _statuses(op)
        call.weight = 3 if method == "get" else 1
        produced: set[str] = set()
        if method == "post" and path.rstrip("/") in creates:
            var = creates[path.rstrip("/")]
            call.captures.append(Capture(var=var, json=("id",)))
            produced.add(var)
        calls.append((call, needed, produced))

    ordered = _order(calls)
    return Scenario(
        name=name or _slug(title),
        description=f"Every operation of {title} {info.get('version', '')}".strip(),
        calls=ordered,
        generated=dict(values.generated),
        notes=notes,
    )


def _order(calls: list[tuple[Call, set[str], set[str]]]) -> list[Call]:
    """Creators before the calls that need their ids, deletes last, otherwise the document's order."""
    remaining = list(calls)
    available: set[str] = set()
    out: list[Call] = []
    while remaining:
        ready = [c for c in remaining if c[1] <= available]
        ready_non_delete = [c for c in ready if c[0].method != "DELETE"]
        blocked_non_delete = [c for c in remaining if c[0].method != "DELETE"]
        pick = (ready_non_delete or blocked_non_delete or ready or remaining)[0]
        remaining.remove(pick)
        out.append(pick[0])
        available |= pick[2]
    return out


def _stat_name(path: str) -> str:
    def name(match: re.Match[str]) -> str:
        param = match[1]
        return "[id]" if param == "id" or param.endswith(("_id", "Id")) else f"[{param}]"

    return _PARAM.sub(name, path)


def _slug(title: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_").lower()
    return (slug or "api")[:60]
