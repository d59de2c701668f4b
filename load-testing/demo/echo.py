"""Echo endpoints that show what a client actually sent: form fields and multipart uploads.

They let tests (and anyone writing a chain) check that a body was encoded exactly once, with the
right names, file names, content types and bytes.  Nothing is stored.  They are left out of
``/openapi.json``: they are test instruments, not part of the platform's API.

Multipart bodies are parsed with the standard library's MIME parser (``email``), so the demo
needs no extra dependency; the bytes of each part come back unchanged (sizes and SHA-256 prove it).
"""

from __future__ import annotations

import hashlib
import urllib.parse
from email import policy
from email.parser import BytesParser
from typing import Any

from fastapi import FastAPI, HTTPException, Request


def _collect(pairs: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Fields by name; a name sent more than once maps to the list of its values, in order."""
    fields: dict[str, str | list[str]] = {}
    for key, value in pairs:
        if key not in fields:
            fields[key] = value
        else:
            previous = fields[key]
            fields[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
    return fields


def parse_urlencoded(body: bytes) -> dict[str, str | list[str]]:
    return _collect(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """``{"fields": {...}, "files": [{field, filename, content_type, size, sha256}]}``; ValueError if malformed."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart() or message.defects:
        raise ValueError(f"not a multipart/form-data body ({message.defects or content_type})")
    pairs: list[tuple[str, str]] = []
    files: list[dict[str, Any]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is None:
            pairs.append((str(name), data.decode("utf-8", "replace")))
            continue
        files.append(
            {
                "field": name,
                "filename": filename,
                "content_type": part.get_content_type(),
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    return {"fields": _collect(pairs), "files": files}


def add_routes(app: FastAPI) -> None:
    """``POST /api/v1/forms/echo`` (urlencoded) and ``POST /api/v1/uploads`` (multipart)."""

    @app.post("/api/v1/forms/echo", tags=["echo"], include_in_schema=False)
    async def form_echo(request: Request) -> dict:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            raise HTTPException(
                415, detail=f"expected application/x-www-form-urlencoded, got {content_type!r}"
            )
        return {"content_type": content_type, "fields": parse_urlencoded(await request.body())}

    @app.post("/api/v1/uploads", tags=["echo"], include_in_schema=False)
    async def upload_echo(request: Request) -> dict:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise HTTPException(415, detail=f"expected multipart/form-data, got {content_type!r}")
        try:
            parsed = parse_multipart(content_type, await request.body())
        except ValueError as exc:
            raise HTTPException(400, detail=str(exc)) from None
        return {"content_type": content_type.partition(";")[0], **parsed}

    @app.post("/api/v1/bodies/echo", tags=["echo"], include_in_schema=False)
    async def body_echo(request: Request) -> dict:
        body = await request.body()
        return {
            "content_type": request.headers.get("content-type", ""),
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
