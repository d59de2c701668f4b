"""Recorded request bodies, decoded into what a replay sends: JSON, form fields, multipart, text or bytes.

A HAR keeps a body as text (``postData.text``), sometimes as fields only
(``postData.params``), sometimes base64 (a non-standard ``encoding`` some tools
add) and sometimes not at all (Chromium leaves out file uploads and binary
bodies unless the request was intercepted; ``bodySize`` still says how big it
was).  This module turns each of those into exactly one body kind:

- JSON stays structured, so correlated ids can be put into it;
- ``application/x-www-form-urlencoded`` is decoded once into fields (the writer
  encodes it once again: ``field%5B1%5D`` stays ``field%5B1%5D`` on the wire);
- ``multipart/form-data`` stays multipart: fields, and files with their file
  name and content type, the file bytes kept for ``files/``;
- any other text up to :data:`MAX_INLINE` bytes is kept verbatim;
- binary bodies, large ones and bodies missing from the recording become a
  :class:`~loadstack.importers.model.BodyFile`: raw bytes, never inlined.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from loadstack.importers.har_schema import PostData
from loadstack.importers.model import BodyFile, FilePart, Multipart

MAX_INLINE = 64 * 1024
MAX_JSON_DEPTH = 64
DEFAULT_FILE_TYPE = "application/octet-stream"
_REPLACEMENT = "\ufffd".encode()
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TEXT_TYPES = re.compile(r"^(text/|application/(.*[+/])?(json|xml|javascript|x-ndjson|graphql|yaml)\b)", re.I)


@dataclass
class Body:
    """One request body, as exactly one kind (all None: no body)."""

    json: Any = None
    has_json: bool = False
    form: list[tuple[str, str]] | None = None
    multipart: Multipart | None = None
    text: str | None = None
    content_type: str | None = None  # of ``text`` (the recorded Content-Type, parameters included)
    file: BodyFile | None = None
    notes: list[str] = field(default_factory=list)


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, counting no further than ``limit + 1``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        if isinstance(node, dict):
            stack += [(v, depth + 1) for v in node.values()]
        elif isinstance(node, list):
            stack += [(v, depth + 1) for v in node]
    return deepest


def parse_json(text: str) -> tuple[Any, bool]:
    """``(value, True)`` for JSON no deeper than :data:`MAX_JSON_DEPTH`, else ``(None, False)``."""
    if not text.strip():
        return None, False
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None, False
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return None, False
    return value, True


def _essence(mime: str) -> str:
    return mime.split(";", 1)[0].strip().lower()


def _boundary(mime: str, data: bytes) -> str | None:
    msg = Message()
    msg["content-type"] = mime
    boundary = msg.get_param("boundary")
    if isinstance(boundary, str) and boundary:
        return boundary
    # A recording without the Content-Type parameter: the body's first line is the delimiter.
    first = data.lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r")
    if first.startswith(b"--") and 2 < len(first) <= 72:
        return first[2:].decode("latin-1")
    return None


def _part_headers(head: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").replace("\r\n", "\n").split("\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def parse_multipart(data: bytes, boundary: str) -> Multipart | None:
    """Fields and files of a multipart body; None when it does not split into parts."""
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    chunks = data.split(delimiter)
    if len(chunks) < 3:
        return None
    fields: list[tuple[str, str]] = []
    files: list[FilePart] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.removeprefix(b"\n")
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = chunk.partition(b"\n\n")
        if not sep:
            continue
        content = content[:-2] if content.endswith(b"\r\n") else content.removesuffix(b"\n")
        headers = _part_headers(head)
        disposition = Message()
        disposition["content-disposition"] = headers.get("content-disposition", "")
        name = disposition.get_param("name", header="content-disposition")
        filename = disposition.get_filename()
        if not isinstance(name, str):
            continue
        if filename is None:
            fields.append((name, content.decode("utf-8", "replace")))
        else:
            files.append(
                FilePart(
                    field=name,
                    filename=filename,
                    content_type=headers.get("content-type") or DEFAULT_FILE_TYPE,
                    data=content,
                    lossy=_REPLACEMENT in content,
                )
            )
    if not fields and not files:
        return None
    return Multipart(fields=fields, files=files)


def _raw(post: PostData) -> tuple[bytes, bool]:
    """The body's bytes, and whether they are exact (base64) rather than text a tool decoded."""
    text = post.text or ""
    if (post.encoding or "").lower() == "base64":
        try:
            return base64.b64decode(text, validate=False), True
        except (binascii.Error, ValueError):
            return text.encode("utf-8", "surrogatepass"), False
    return text.encode("utf-8", "surrogatepass"), False


def _textual(mime: str, data: bytes) -> str | None:
    """The body as text when it is text (by type and content), else None."""
    essence = _essence(mime)
    if essence and not _TEXT_TYPES.match(essence) and essence != "application/x-www-form-urlencoded":
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _CONTROL.search(text) or "\ufffd" in text:
        return None
    return text


def request_body(post: PostData | None, body_size: float | None, where: str) -> Body:
    """The body of one recorded request; ``where`` names it in notes (``entry 7 (POST /upload)``)."""
    size = int(body_size or 0) if body_size and body_size > 0 else 0
    if post is None:
        if size:
            return Body(
                file=BodyFile(b"", DEFAULT_FILE_TYPE, recorded=False, size=size),
                notes=[f"{where}: a {size}-byte body is not in the recording"],
            )
        return Body()
    mime = (post.mimeType or "").strip()
    essence = _essence(mime)
    data, exact = _raw(post)
    if not data and post.params:
        return _from_params(post, essence, where)
    if not data:
        if size:
            kind = essence or DEFAULT_FILE_TYPE
            return Body(
                file=BodyFile(b"", kind, recorded=False, size=size),
                notes=[f"{where}: its {size}-byte {kind} body is not in the recording"],
            )
        return Body()
    if essence == "multipart/form-data" or (not essence and data.lstrip().startswith(b"--")):
        boundary = _boundary(mime, data)
        parsed = parse_multipart(data, boundary) if boundary else None
        if parsed is not None:
            body = Body(multipart=parsed)
            for part in parsed.files:
                if part.lossy and not exact:
                    body.notes.append(
                        f"{where}: file {part.filename!r} was recorded as text with unreadable bytes replaced; "
                        "put the real file in its place under files/"
                    )
            return body
        return Body(
            file=BodyFile(data, mime or DEFAULT_FILE_TYPE),
            notes=[f"{where}: a multipart body that does not split into parts is sent as recorded bytes"],
        )
    if len(data) > MAX_INLINE:
        return Body(file=BodyFile(data, mime or DEFAULT_FILE_TYPE))
    text = _textual(mime, data)
    if text is None:
        note = [] if exact else [f"{where}: binary body recorded as text; its bytes may not be exact"]
        return Body(file=BodyFile(data, mime or DEFAULT_FILE_TYPE), notes=note)
    if essence == "application/x-www-form-urlencoded":
        return Body(form=urllib.parse.parse_qsl(text, keep_blank_values=True))
    if "json" in essence:
        value, ok = parse_json(text)
        if ok:
            return Body(json=value, has_json=True)
    return Body(text=text, content_type=mime or "text/plain; charset=utf-8")


def _from_params(post: PostData, essence: str, where: str) -> Body:
    """Fields only, no text (Firefox, some proxies): they are as they appeared on the wire."""
    params = post.params or []
    if essence == "multipart/form-data" or any(p.fileName is not None for p in params):
        fields = [(p.name, p.value or "") for p in params if p.fileName is None]
        files = [
            FilePart(
                field=p.name,
                filename=p.fileName or "",
                content_type=p.contentType or DEFAULT_FILE_TYPE,
                data=(p.value or "").encode("utf-8", "surrogatepass"),
                lossy=True,
            )
            for p in params
            if p.fileName is not None
        ]
        notes = [
            f"{where}: the content of file {f.filename!r} is not exact in the recording; "
            "put the real file in its place under files/"
            for f in files
        ]
        return Body(multipart=Multipart(fields=fields, files=files), notes=notes)
    decoded = [(urllib.parse.unquote_plus(p.name), urllib.parse.unquote_plus(p.value or "")) for p in params]
    return Body(form=decoded)
