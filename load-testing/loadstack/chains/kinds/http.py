"""``http`` steps: one request through the user's ``FastHttpSession``, and the request model ``await`` probes share.

The body is one of ``json`` (Locust encodes it), ``body`` (text), ``form`` (urlencoded here,
exactly once), ``multipart`` (encoded by urllib3, with the boundary in the Content-Type) or
``body_file`` (raw bytes, never templated).  Request files are read once per process, when the
chain is built, not per request.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from urllib3 import encode_multipart_formdata

from loadstack.chains.engine import ChainRun, Mismatch, StepFailed
from loadstack.chains.jsonpath import json_get, parse_json_path
from loadstack.chains.kinds.base import Builder, LazyResult, Step, has_template, render_constant, short
from loadstack.chains.schema import ExpectSpec, HttpSpec, HttpStepSpec
from loadstack.chains.templates import Template, compile_value

FORM_URLENCODED = "application/x-www-form-urlencoded"
_NO_EXPECT = ExpectSpec()
_file_cache: dict[Path, bytes] = {}


def inside(base_dir: Path, path: str) -> bool:
    """Whether ``path`` (relative to ``base_dir``) still lies inside ``base_dir`` once every symlink
    is followed: a link in the chain's folder must not hand out ``/etc/shadow`` as a request body."""
    root = os.path.realpath(base_dir)
    real = os.path.realpath(os.path.join(root, path))
    return os.path.commonpath([root, real]) == root


def request_file(base_dir: Path | None, path: str) -> Path:
    """Where a request file is: relative to the chain file's directory, or to the cwd (Python API).

    In a chain folder the path is resolved (``realpath``), so the file read is the file checked; one
    that resolves outside the folder is a ``ValueError`` (the loader reports it as a chain problem).
    """
    if base_dir is None:
        return Path(path)
    if not inside(base_dir, path):
        raise ValueError(f"{path!r} resolves to a file outside the chain file's directory")
    return Path(os.path.realpath(base_dir / path))


def read_request_file(path: Path) -> bytes:
    """A request file's bytes, read once per process (not per request)."""
    data = _file_cache.get(path)
    if data is None:
        data = _file_cache[path] = path.read_bytes()
    return data


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _field_pairs(fields: dict[str, Any]) -> list[tuple[str, str]]:
    """Rendered form/multipart fields as (name, text) pairs; a list value repeats the name."""
    pairs: list[tuple[str, str]] = []
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, _field_text(item)))
    return pairs


def _with_content_type(headers: dict[str, Any] | None, content_type: str, *, force: bool) -> dict[str, Any]:
    """``headers`` plus the body's Content-Type: a header the step sets wins, unless ``force``."""
    headers = dict(headers or {})
    given = [k for k in headers if k.lower() == "content-type"]
    if given and not force:
        return headers
    for key in given:
        del headers[key]
    headers["Content-Type"] = content_type
    return headers


class HttpRequest:
    """An HTTP request compiled once: templates parsed, request files read.

    ``render(fn)`` gives the keyword arguments for Locust's ``request()``; ``fn`` renders one
    compiled value (``render_constant``, or a step's renderer within a run).
    """

    def __init__(self, spec: HttpSpec, base_dir: Path | None) -> None:
        self.method = spec.method
        self.path = Template(spec.path)
        self.headers = compile_value(spec.headers or {})
        self.json = compile_value(spec.json_body)
        self.body = Template(spec.body) if spec.body is not None else None
        self.form = compile_value(spec.form) if spec.form is not None else None
        multipart = spec.multipart
        self.fields = compile_value(multipart.fields) if multipart is not None else None
        self.files = [
            (
                f.field,
                (
                    f.filename or Path(f.path).name,
                    read_request_file(request_file(base_dir, f.path)),
                    f.content_type,
                ),
            )
            for f in (multipart.files if multipart is not None else [])
        ]
        raw = spec.body_file
        self.raw = (read_request_file(request_file(base_dir, raw.path)), raw.content_type) if raw else None

    def templates(self) -> list[Any]:
        return [self.path, self.headers, self.json, self.body, self.form, self.fields]

    def is_static(self) -> bool:
        return not has_template(self.templates())

    def render(self, render: Callable[[Any], Any]) -> dict[str, Any]:
        headers = render(self.headers) or None
        data: Any = None
        if self.body is not None:
            data = render(self.body)
        elif self.form is not None:
            data = urllib.parse.urlencode(_field_pairs(render(self.form)))
            headers = _with_content_type(headers, FORM_URLENCODED, force=False)
        elif self.fields is not None:
            data, content_type = encode_multipart_formdata([*_field_pairs(render(self.fields)), *self.files])
            headers = _with_content_type(headers, content_type, force=True)
        elif self.raw is not None:
            data = self.raw[0]
            headers = _with_content_type(headers, self.raw[1], force=False)
        return {"path": render(self.path), "headers": headers, "json": render(self.json), "data": data}


class HttpResult(LazyResult):
    """``last`` of an HTTP step: ``status``, ``headers``, ``error`` up front; ``text`` and ``json`` on first use.

    Most steps never look at the body; decoding and parsing it only when an
    expectation, a save or a later template asks keeps the engine's overhead small.
    """

    def __init__(self, resp: Any) -> None:
        error = getattr(resp, "error", None)
        super().__init__(status=resp.status_code, error=f"{type(error).__name__}: {error}" if error else None)
        self._resp = resp

    def __missing__(self, key: str) -> Any:
        if key == "headers":
            value: Any = {k.lower(): v for k, v in (self._resp.headers or {}).items()}
        elif key == "text":
            value = (self._resp.text or "")[:4096] if self["status"] else ""
        elif key == "json":
            value = None
            if "json" in self["headers"].get("content-type", "") and self["text"]:
                try:
                    value = json.loads(self._resp.text)
                except ValueError:
                    value = None
        else:
            raise KeyError(key)
        self[key] = value
        return value

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def shown(self) -> dict[str, Any]:
        return {k: self[k] for k in ("status", "json", "text", "error")}


def _error_tail(last: dict[str, Any]) -> str:
    if last.get("error"):
        return f" ({last['error']})"
    body = last.get("json") if last.get("json") is not None else last.get("text")
    return f" with body {short(body, 120)}" if body else ""


class HttpStep(Step[HttpStepSpec]):
    kind, request_type = "http", "HTTP"

    def __init__(self, spec: HttpStepSpec, builder: Builder) -> None:
        super().__init__(spec, builder)
        self.method = spec.http.method
        self.request = HttpRequest(spec.http, builder.base_dir)
        # A request without templates is rendered once, here, not on every run.
        self._static = self.request.render(render_constant) if self.request.is_static() else None

    def templates(self) -> list[Any]:
        return self.request.templates()

    def execute(self, run: ChainRun) -> None:
        req = self._static if self._static is not None else self.request.render(lambda v: self.render(run, v))
        name = run.stat_name(self.name)
        with run.rt.http.request(
            self.method,
            req["path"],
            name=name,
            headers=req["headers"],
            json=req["json"],
            data=req["data"],
            catch_response=True,
        ) as resp:
            resp.request_meta["request_type"] = self.request_type
            last = HttpResult(resp)
            try:
                self.finish(run, last)
            except Mismatch as exc:
                resp.failure(str(exc))  # Locust reports it when the block ends
                raise StepFailed(self.name, f"{name}: {exc}") from None
            resp.success()

    def check_expectations(self, last: Any) -> None:
        e = self.expect or _NO_EXPECT
        status = last["status"]
        if e.status is not None:
            allowed = e.status if isinstance(e.status, list) else [e.status]
            if status not in allowed:
                raise Mismatch(
                    f"expected status {' or '.join(map(str, allowed))}, observed {status}{_error_tail(last)}"
                )
        elif not 100 <= status < 400:
            raise Mismatch(f"expected a 2xx/3xx status, observed {status}{_error_tail(last)}")
        for path, expected in (e.json_values or {}).items():
            try:
                observed = json_get(last.get("json"), parse_json_path(path))
            except KeyError:
                raise Mismatch(
                    f"expected {path} == {short(expected)}, observed no such field in {short(last.get('json'))}"
                ) from None
            if observed != expected:
                raise Mismatch(f"expected {path} == {short(expected)}, observed {short(observed)}")
        if e.contains is not None and e.contains not in last.get("text", ""):
            raise Mismatch(f"expected the body to contain {e.contains!r}, observed {short(last.get('text'))}")
        super().check_expectations(last)
