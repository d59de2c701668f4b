"""Chain steps: one class per step kind, built from a :class:`~loadstack.chains.schema.StepSpec`.

A step's expectations, ``check`` and ``save`` run inside its timed operation,
so a mismatch is that step's failure in Locust's stats, with a message that
names the step, what was expected and what was observed.

The helpers at the bottom (``http()``, ``sql()``, ``await_redis()``, …) are the
Python API: they build the same specs a chain file does.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
from urllib3 import encode_multipart_formdata

from loadstack.chains import metrics
from loadstack.chains.engine import ChainRun, Mismatch, StepFailed, run_sequence
from loadstack.chains.jsonpath import json_get, parse_json_path
from loadstack.chains.schema import (
    AmqpExpectSpec,
    AmqpPublishSpec,
    AwaitSpec,
    BranchPath,
    BranchSpec,
    ExpectSpec,
    GotoSpec,
    HttpSpec,
    RedisSpec,
    RepeatSpec,
    SaveSpec,
    SqlSpec,
    StepSpec,
    ThinkSpec,
    WsSpec,
)
from loadstack.chains.templates import (
    Expression,
    Template,
    TemplateError,
    compile_value,
    references,
    render_value,
)
from loadstack.users.base import RequestFailure

if TYPE_CHECKING:
    from loadstack.chains.engine import Chain
    from loadstack.chains.runtime import ChainRuntime


_NO_SCOPE: dict[str, Any] = {}
_NO_EXPECT = ExpectSpec()
_MISSING = object()


def _has_template(value: Any) -> bool:
    if isinstance(value, Template):
        return value._expr is not None or value._template is not None
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False


def short(value: Any, limit: int = 160) -> str:
    if isinstance(value, HttpResult):
        value = {k: value[k] for k in ("status", "json", "text", "error")}
    try:
        text = json.dumps(value, default=str, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def decode(value: Any) -> Any:
    """Redis replies as text: bytes → str, recursively."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {decode(k): decode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [decode(v) for v in value]
    return value


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


class Step:
    """Common parts: when, repeat, on_failure, expect, check, save."""

    kind = "custom"
    request_type = "CUSTOM"

    def __init__(self, spec: StepSpec, base_dir: Path | None = None) -> None:
        self.spec = spec
        self.base_dir = base_dir  # where request files are (a chain file's directory; None: cwd)
        self.name = spec.name
        self.when = Expression(spec.when) if spec.when else None
        if isinstance(spec.on_failure, GotoSpec):
            self.on_failure: Any = ("goto", spec.on_failure.goto, spec.on_failure.max)
        else:
            self.on_failure = spec.on_failure
        r = spec.repeat
        self.repeat = (
            (
                r.times,
                Expression(r.until) if r.until else None,
                Expression(r.while_) if r.while_ else None,
                r.max or r.times or 1,
            )
            if r
            else None
        )
        self.saves = [Extractor(var, s) for var, s in (spec.save or {}).items()]
        self.expect = spec.expect
        self.check = Expression(spec.check) if spec.check else None
        self._constants: dict[int, Any] = {}

    # -- structure -------------------------------------------------------------------------
    def children(self) -> list[Step]:
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
        if self.repeat:
            for expr in self.repeat[1:3]:
                if expr is not None:
                    refs |= expr.references
        for extractor in self.saves:
            refs |= extractor.references
        return refs

    # -- execution -------------------------------------------------------------------------
    def execute(self, run: ChainRun) -> None:
        raise NotImplementedError

    def render(self, run: ChainRun, value: Any) -> Any:
        # Constants are rendered once per step and reused (callers never mutate them).
        static = self._constants.get(id(value), _MISSING)
        if static is not _MISSING:
            return static
        if not _has_template(value):
            static = self._constants[id(value)] = render_value(value, _NO_SCOPE)
            return static
        try:
            return render_value(value, run.scope())
        except TemplateError as exc:
            message = f"{run.stat_name(self.name)}: {exc}"
            run.rt.timed.report(run.stat_name(self.name), 0.0, request_type=self.request_type, error=message)
            raise StepFailed(self.name, message) from None

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
        e = self.expect
        if e is None:
            return
        if e.rows is not None and len(last.get("rows", [])) != e.rows:
            raise Mismatch(
                f"expected {e.rows} rows, observed {len(last.get('rows', []))}: {short(last.get('rows'))}"
            )
        if e.min_rows is not None and len(last.get("rows", [])) < e.min_rows:
            raise Mismatch(f"expected at least {e.min_rows} rows, observed {len(last.get('rows', []))}")

    def run_client(self, run: ChainRun, client: Any, op: Any) -> Any:
        try:
            return client.call(run.stat_name(self.name), op, request_type=self.request_type)
        except RequestFailure as failure:
            raise StepFailed(self.name, failure.message) from None


def _render_constant(value: Any) -> Any:
    return render_value(value, _NO_SCOPE)


FORM_URLENCODED = "application/x-www-form-urlencoded"
_file_cache: dict[Path, bytes] = {}


def request_file(base_dir: Path | None, path: str) -> Path:
    """Where a request file is: relative to the chain file's directory, or to the cwd (Python API)."""
    return base_dir / path if base_dir is not None else Path(path)


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
    """An ``http`` request compiled once: templates parsed, request files read.

    ``render(fn)`` gives the keyword arguments for Locust's ``request()``; ``fn`` renders one
    compiled value (a constant renderer, or a step's renderer within a run).  The body is one of
    ``json`` (Locust encodes it), ``body`` (text), ``form`` (urlencoded here, exactly once),
    ``multipart`` (encoded by urllib3, with the boundary in the Content-Type) or ``body_file``
    (raw bytes, never templated).
    """

    def __init__(self, spec: HttpSpec, base_dir: Path | None) -> None:
        self.method = spec.method
        self.path = Template(spec.path)
        self.headers = compile_value(spec.headers or {})
        self.json = compile_value(spec.json_body)
        self.body = Template(spec.body) if spec.body is not None else None
        self.form = compile_value(spec.form) if spec.form is not None else None
        self.fields = compile_value(spec.multipart.fields) if spec.multipart is not None else None
        self.files = [
            (
                f.field,
                (
                    f.filename or Path(f.path).name,
                    read_request_file(request_file(base_dir, f.path)),
                    f.content_type,
                ),
            )
            for f in (spec.multipart.files if spec.multipart is not None else [])
        ]
        self.raw = (
            (read_request_file(request_file(base_dir, spec.body_file.path)), spec.body_file.content_type)
            if spec.body_file is not None
            else None
        )

    def templates(self) -> list[Any]:
        return [self.path, self.headers, self.json, self.body, self.form, self.fields]

    def render(self, render: Any) -> dict[str, Any]:
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

    def describe(self, rendered: dict[str, Any]) -> str:
        return f"HTTP {self.method} {rendered['path']}"


class HttpStep(Step):
    kind, request_type = "http", "HTTP"

    def __init__(self, spec: StepSpec, base_dir: Path | None = None) -> None:
        super().__init__(spec, base_dir)
        h: HttpSpec = spec.http  # type: ignore[assignment]
        self.method = h.method
        self.request = HttpRequest(h, base_dir)
        # A request without templates is rendered once, here, not on every run.
        self._static = None if _has_template(self.templates()) else self.request.render(_render_constant)

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
            last = http_result(resp)
            try:
                self.finish(run, last)
            except Mismatch as exc:
                resp.failure(str(exc))
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


def _error_tail(last: dict[str, Any]) -> str:
    if last.get("error"):
        return f" ({last['error']})"
    body = last.get("json") if last.get("json") is not None else last.get("text")
    return f" with body {short(body, 120)}" if body else ""


class HttpResult(dict):
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


def http_result(resp: Any) -> HttpResult:
    return HttpResult(resp)


class WsStep(Step):
    kind, request_type = "ws", "WS"

    def __init__(self, spec: StepSpec, base_dir: Path | None = None) -> None:
        super().__init__(spec, base_dir)
        w: WsSpec = spec.ws  # type: ignore[assignment]
        self.path = w.path
        self.send = compile_value(w.send)
        self.until = Expression(w.expect)
        self.timeout = w.timeout

    def templates(self) -> list[Any]:
        return [self.send]

    def execute(self, run: ChainRun) -> None:
        ws = run.rt.ws
        name = run.stat_name(self.name)
        if not ws.connected:
            try:
                ws.connect(self.path, name=f"{name}/connect")
            except RequestFailure as failure:
                raise StepFailed(self.name, failure.message) from None
        payload = self.render(run, self.send)

        def op() -> Any:
            ws.send_json(payload)
            deadline = time.monotonic() + self.timeout
            seen = 0
            while time.monotonic() < deadline:
                frame, _ = ws.recv_json(deadline - time.monotonic())
                seen += 1
                try:
                    matched = self.until(run.scope(message=frame))
                except TemplateError:
                    matched = False
                if matched:
                    self.finish(run, {"message": frame})
                    return frame
            raise Mismatch(
                f"no frame matching `{self.until.source}` within {self.timeout:.1f}s ({seen} frames seen)"
            )

        self.run_client(run, ws, op)


class SqlStep(Step):
    kind, request_type = "sql", "SQL"

    def __init__(self, spec: StepSpec, base_dir: Path | None = None) -> None:
        super().__init__(spec, base_dir)
        s: SqlSpec = spec.sql  # type: ignore[assignment]
        self.query = s.query
        self.params = compile_value(s.params)

    def templates(self) -> list[Any]:
        return [self.params]

    def execute(self, run: ChainRun) -> None:
        params = self.render(run, self.params)
        try:
            run.rt.sql.query(
                run.stat_name(self.name),
                self.query,
                params,
                check=lambda rows: self.finish(run, {"rows": rows, "rowcount": len(rows)}),
            )
        except RequestFailure as failure:
            raise StepFailed(self.name, failure.message) from None


class RedisStep(Step):
    kind, request_type = "redis", "REDIS"

    def __init__(self, spec: StepSpec, base_dir: Path | None = None) -> None:
        super().__init__(spec, base_dir)
        r: RedisSpec = spec.redis  # type: ignore[assignment]
        self.command = r.command
        self.args = compile_value(r.args)

    def templates(self) -> list[Any]:
        return [self.args]

    def execute(self, run: ChainRun) -> None:
        args = self.render(run, self.args)
        client = run.rt.redis

        def op() -> Any:
            value = decode(client.redis.execute_command(self.command, *args))
            self.finish(run, {"value": value})
            return value

        self.run_client(run, client, op)


class AmqpPublishStep(Step):
    kind, request_type = "amqp_publish", "AMQP"

    def __init__(self, spec: StepSpec, base_dir: Path | None = None) -> None:
        super().__init__(spec, base_dir)
        a: AmqpPublishSpec = spec.amqp_publish  # type: ignore[assignment]
        self.exchange = a.exchange
        self.routing_key = Template(a.routing_key)
        self.json = compile_value(a.json_body)
        self.body = Template(a.body) if a.body is not None else None
        self.headers = compile_value(a.headers or {})

    def templates(self) -> list[Any]:
        return [self.routing_key, self.json, self.body, self.headers]

    def execute(self, run: ChainRun) -> None:
        if self.body is not None:
            body, content_type = str(self.render(run, self.body)), "text/plain"
        else:
            body, content_type = json.dumps(self.render(run, self.json), default=str), "application/json"
        try:
            run.rt.amqp.publish(
                run.stat_name(self.name),
                body,
                routing_key=str(self.render(run, self.routing_key)),
                exchange=self.exchange,
                headers=self.render(run, self.headers),
                content_type=content_type,
                content_encoding="utf-8",
            )
        except RequestFailure as failure:
            raise StepFailed(self.name, failure.message) from None
        run.last = {"published": True}
        run.done_at[self.name] = time.perf_counter()


class AmqpExpectStep(Step):
    kind, request_type = "amqp_expect", "AMQP"

    def __init__(self, spec: StepSpec, base_dir: Path | None = None) -> None:
        super().__init__(spec, base_dir)
        a: AmqpExpectSpec = spec.amqp_expect  # type: ignore[assignment]
        self.spec_a = a
        self.queue = Template(a.queue) if a.queue else None
        self.match = Expression(a.match)

    def templates(self) -> list[Any]:
        return [self.queue] if self.queue else []

    def references(self) -> set[str]:
        return super().references() | self.match.references

    def prepare(self, runtime: ChainRuntime, chain: Chain) -> None:
        """Bind a private tap queue to the exchange before any run, so no event is missed."""
        a = self.spec_a
        if a.exchange is None:
            return
        key = f"{chain.name}/{self.name}"
        tap = f"loadtest.{runtime.run_id}.tap.{uuid.uuid4().hex[:10]}"
        try:
            runtime.amqp.declare_queue(tap, name=f"{key}/tap", **{"x-expires": 120_000})
            runtime.amqp.call(f"{key}/tap", runtime.amqp.channel.queue_bind, tap, a.exchange, a.routing_key)
        except RequestFailure:
            return  # recorded; the step will fail with "tap not ready"
        runtime.taps[key] = tap

    def execute(self, run: ChainRun) -> None:
        name = run.stat_name(self.name)
        queue = run.rt.taps.get(name) if self.queue is None else str(self.render(run, self.queue))
        client = run.rt.amqp
        timeout = self.spec_a.timeout

        def op() -> Any:
            if queue is None:
                raise Mismatch(f"no tap on exchange {self.spec_a.exchange!r} (binding failed at user start)")
            channel = client._ensure()
            deadline = time.monotonic() + timeout
            seen, delay = 0, 0.002
            while time.monotonic() < deadline:
                raw = channel.basic_get(queue, no_ack=True)
                if raw is None:
                    gevent.sleep(delay)
                    delay = min(delay * 1.5, 0.05)
                    continue
                seen += 1
                message = amqp_message(raw)
                try:
                    matched = self.match(run.scope(message=message))
                except TemplateError:
                    matched = False
                if matched:
                    self.finish(run, {"message": message})
                    return message
            raise Mismatch(
                f"no message matching `{self.match.source}` on {queue} within {timeout:.1f}s ({seen} other messages seen)"
            )

        self.run_client(run, client, op)


def amqp_message(raw: Any) -> dict[str, Any]:
    body = raw.body if isinstance(raw.body, bytes) else str(raw.body).encode()
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    return {
        "body": text,
        "json": data,
        "headers": dict(raw.properties.get("application_headers") or {}),
        "routing_key": raw.delivery_info.get("routing_key"),
    }


class AwaitStep(Step):
    """Poll a probe with backoff until ``until`` holds; record the time until it held."""

    kind, request_type = "await", "AWAIT"

    def __init__(self, spec: StepSpec, base_dir: Path | None = None) -> None:
        super().__init__(spec, base_dir)
        a: AwaitSpec = spec.await_  # type: ignore[assignment]
        self.a = a
        self.until = Expression(a.until) if a.until else None
        if a.sql:
            self.probe_kind, self.probe = "sql", (a.sql.query, compile_value(a.sql.params))
        elif a.redis:
            self.probe_kind, self.probe = "redis", (a.redis.command, compile_value(a.redis.args))
        else:
            h = a.http
            assert h is not None
            self.probe_kind = "http"
            self.http_probe = HttpRequest(h, base_dir)
            self.probe = (h.method, *self.http_probe.templates())

    def templates(self) -> list[Any]:
        return list(self.probe[1:])

    def references(self) -> set[str]:
        return super().references() | (self.until.references if self.until else set())

    def describe(self, rendered: tuple) -> str:
        if self.probe_kind == "sql":
            return f"SQL {self.probe[0].strip()} with {short(rendered[1])}"
        if self.probe_kind == "redis":
            return f"{self.probe[0]} {' '.join(str(a) for a in rendered[1])}"
        return self.http_probe.describe(rendered[1])

    def poll(self, run: ChainRun, rendered: tuple) -> Any:
        rt = run.rt
        if self.probe_kind == "sql":
            rows = rt.quiet_sql.query("await", self.probe[0], rendered[1])
            return {"rows": rows, "rowcount": len(rows)}
        if self.probe_kind == "redis":
            return {"value": decode(rt.quiet_redis.redis.execute_command(self.probe[0], *rendered[1]))}
        req = rendered[1]
        resp = rt.quiet_http.request(
            self.http_probe.method, req["path"], headers=req["headers"], json=req["json"], data=req["data"]
        )
        return http_result(resp)

    def held(self, run: ChainRun, last: Any) -> bool:
        if self.until is not None:
            return bool(self.until(run.scope(last=last)))
        if self.probe_kind == "sql":
            return bool(last["rows"])
        if self.probe_kind == "redis":
            return last["value"] not in (None, {}, [], "")
        return last["status"] == 200

    def execute(self, run: ChainRun) -> None:
        a = self.a
        name = run.stat_name(self.name)
        if self.probe_kind == "http":
            rendered = (None, self.http_probe.render(lambda v: self.render(run, v)))
        else:
            rendered = (None, self.render(run, self.probe[1]))
        start = time.perf_counter()
        since = run.done_at.get(a.since) if a.since else None
        deadline = start + a.timeout
        interval, attempts = a.interval, 0
        observed: Any = None
        problem = ""
        while True:
            attempts += 1
            try:
                observed = self.poll(run, rendered)
                if self.held(run, observed):
                    break
                problem = ""
            except (RequestFailure, TemplateError) as exc:
                problem = f"; last error: {exc}"
            now = time.perf_counter()
            if now >= deadline:
                message = (
                    f"{name}: `{self.until.source if self.until else 'a result'}` not reached within {a.timeout:.1f}s "
                    f"({attempts} polls of {self.describe(rendered)}); last observed: {short(observed)}{problem}"
                )
                run.rt.timed.report(
                    name, (now - (since or start)) * 1000.0, request_type=self.request_type, error=message
                )
                raise StepFailed(self.name, message)
            gevent.sleep(min(interval, max(0.0, deadline - now)))
            interval = min(interval * a.backoff, a.max_interval)
        held_at = time.perf_counter()
        hop_ms = (held_at - (since if since is not None else start)) * 1000.0
        try:
            self.finish(run, observed)
        except Mismatch as exc:
            message = f"{name}: {exc}"
            run.rt.timed.report(name, hop_ms, request_type=self.request_type, error=message)
            raise StepFailed(self.name, message) from None
        run.done_at[self.name] = held_at
        run.rt.timed.report(name, hop_ms, request_type=self.request_type)


class SleepStep(Step):
    kind = "sleep"

    def execute(self, run: ChainRun) -> None:
        gevent.sleep(float(self.spec.sleep or 0))
        run.done_at[self.name] = time.perf_counter()


class ThinkStep(Step):
    """A user's pause; excluded from the chain's end-to-end time."""

    kind = "think"

    def execute(self, run: ChainRun) -> None:
        t = self.spec.think
        seconds = run.rt.rng.uniform(t.min, t.max) if isinstance(t, ThinkSpec) else float(t or 0)
        gevent.sleep(seconds)
        run.think_s += seconds
        run.done_at[self.name] = time.perf_counter()


class BranchStep(Step):
    kind = "branch"

    def __init__(self, spec: StepSpec, base_dir: Path | None = None) -> None:
        super().__init__(spec, base_dir)
        b: BranchSpec = spec.branch  # type: ignore[assignment]
        self.paths = [
            (
                p.name,
                Expression(p.when) if p.when else None,
                p.weight,
                [build_step(s, base_dir) for s in p.steps],
            )
            for p in b.paths
        ]
        self.weighted = all(p[2] is not None for p in self.paths)

    def children(self) -> list[Step]:
        out: list[Step] = []
        for _, _, _, steps in self.paths:
            for step in steps:
                out.append(step)
                out.extend(step.children())
        return out

    def references(self) -> set[str]:
        refs = super().references()
        for _, when, _, _ in self.paths:
            if when is not None:
                refs |= when.references
        return refs

    def choose(self, run: ChainRun) -> tuple[str, list[Step]] | None:
        if self.weighted:
            name, _, _, steps = run.rt.rng.choices(self.paths, weights=[p[2] for p in self.paths])[0]
            return name, steps
        for name, when, _, steps in self.paths:
            if when is None:
                return name, steps
            try:
                if when(run.scope()):
                    return name, steps
            except TemplateError as exc:
                message = f"{run.stat_name(self.name)}: path {name}: {exc}"
                run.rt.timed.report(run.stat_name(self.name), 0.0, request_type="BRANCH", error=message)
                raise StepFailed(self.name, message) from None
        return None

    def execute(self, run: ChainRun) -> None:
        chosen = self.choose(run)
        if chosen is None:
            metrics.counters.skipped(run.chain.name, self.name)
            return
        name, steps = chosen
        metrics.counters.branch(run.chain.name, self.name, name)
        run_sequence(steps, run)


class PythonStep(Step):
    """A Python callable ``fn(run) -> value`` (Python API only); its result is ``last.value``."""

    kind, request_type = "python", "PYTHON"

    def execute(self, run: ChainRun) -> None:
        fn = self.spec.python

        def op() -> Any:
            value = fn(run)
            self.finish(run, {"value": value})
            return value

        self.run_client(run, run.rt.timed, op)


STEP_CLASSES: dict[str, type[Step]] = {
    "http": HttpStep,
    "ws": WsStep,
    "sql": SqlStep,
    "redis": RedisStep,
    "amqp_publish": AmqpPublishStep,
    "amqp_expect": AmqpExpectStep,
    "await": AwaitStep,
    "sleep": SleepStep,
    "think": ThinkStep,
    "branch": BranchStep,
    "python": PythonStep,
}


def build_step(spec: StepSpec, base_dir: Path | None = None) -> Step:
    """The step of ``spec``; request files are relative to ``base_dir`` (the cwd when None)."""
    return STEP_CLASSES[spec.kind](spec, base_dir)


# -- Python API: the same specs a chain file produces ----------------------------------------------
def _common(name: str, **options: Any) -> dict[str, Any]:
    known = {"when", "on_failure", "repeat", "save", "expect", "check"}
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"unknown step option(s): {', '.join(sorted(unknown))}")
    spec: dict[str, Any] = {"name": name, **options}
    if isinstance(spec.get("repeat"), dict):
        spec["repeat"] = RepeatSpec.model_validate(spec["repeat"])
    if isinstance(spec.get("expect"), dict):
        spec["expect"] = ExpectSpec.model_validate(spec["expect"])
    if isinstance(spec.get("on_failure"), dict):
        spec["on_failure"] = GotoSpec.model_validate(spec["on_failure"])
    return spec


def http(
    name: str,
    method: str,
    path: str,
    *,
    json: Any = None,
    headers: dict | None = None,
    body: str | None = None,
    form: dict[str, Any] | None = None,
    multipart: dict[str, Any] | None = None,
    body_file: dict[str, Any] | str | None = None,
    **options: Any,
) -> StepSpec:
    """An HTTP step; at most one body: ``json``, ``body`` (text), ``form``, ``multipart`` or ``body_file``.

    ``multipart``: ``{"fields": {...}, "files": [{"field", "path", "filename", "content_type"}]}``;
    ``body_file``: a path or ``{"path", "content_type"}``.  File paths are absolute or relative to
    the current directory, and are read once when the chain is built.
    """
    spec = HttpSpec.model_validate(
        {
            "method": method,
            "path": path,
            "json": json,
            "headers": headers,
            "body": body,
            "form": form,
            "multipart": multipart,
            "body_file": {"path": body_file} if isinstance(body_file, str) else body_file,
        }
    )
    return StepSpec(http=spec, **_common(name, **options))


def sql(name: str, query: str, params: Any = None, **options: Any) -> StepSpec:
    return StepSpec(sql=SqlSpec(query=query, params=params), **_common(name, **options))


def redis(name: str, command: str, *args: Any, **options: Any) -> StepSpec:
    return StepSpec(redis=RedisSpec(command=command, args=list(args)), **_common(name, **options))


def amqp_publish(
    name: str, routing_key: str, *, exchange: str = "", json: Any = None, **options: Any
) -> StepSpec:
    return StepSpec(
        amqp_publish=AmqpPublishSpec(exchange=exchange, routing_key=routing_key, json=json),
        **_common(name, **options),
    )


def amqp_expect(
    name: str,
    *,
    match: str,
    exchange: str | None = None,
    routing_key: str = "#",
    queue: str | None = None,
    timeout: float = 5,
    **options: Any,
) -> StepSpec:
    spec = AmqpExpectSpec(
        queue=queue, exchange=exchange, routing_key=routing_key, match=match, timeout=timeout
    )
    return StepSpec(amqp_expect=spec, **_common(name, **options))


def await_redis(
    name: str,
    command: str,
    *args: Any,
    until: str | None = None,
    timeout: float = 10,
    since: str | None = None,
    **options: Any,
) -> StepSpec:
    spec = AwaitSpec(
        redis=RedisSpec(command=command, args=list(args)), until=until, timeout=timeout, since=since
    )
    return StepSpec.model_validate({"await": spec, **_common(name, **options)})


def await_sql(
    name: str,
    query: str,
    params: Any = None,
    *,
    until: str | None = None,
    timeout: float = 10,
    since: str | None = None,
    **options: Any,
) -> StepSpec:
    spec = AwaitSpec(sql=SqlSpec(query=query, params=params), until=until, timeout=timeout, since=since)
    return StepSpec.model_validate({"await": spec, **_common(name, **options)})


def ws(name: str, send: Any, *, expect: str = "true", path: str = "/ws/stream", **options: Any) -> StepSpec:
    return StepSpec(ws=WsSpec(path=path, send=send, expect=expect), **_common(name, **options))


def think(name: str, minimum: float, maximum: float) -> StepSpec:
    return StepSpec(name=name, think=ThinkSpec(min=minimum, max=maximum))


def branch(name: str, paths: list[tuple[str, dict[str, Any], list[StepSpec]]], **options: Any) -> StepSpec:
    """``paths``: ``(name, {"when": expr} or {"weight": n}, steps)`` tuples."""
    built = [BranchPath(name=n, steps=s, **opts) for n, opts, s in paths]
    return StepSpec(branch=BranchSpec(paths=built), **_common(name, **options))


def python(name: str, fn: Any, **options: Any) -> StepSpec:
    return StepSpec(python=fn, **_common(name, **options))
