"""Order attachments and notes: the demo API's documented form bodies (multipart and urlencoded).

``POST /api/v1/orders/{order_id}/attachments`` takes ``multipart/form-data``
(a ``description`` field and a PDF ``file``); ``POST
/api/v1/orders/{order_id}/notes`` takes ``application/x-www-form-urlencoded``
(``text``, ``visibility``).  Both answer with what they received (field
names, file name, content type, size), so ``loadstack import openapi`` can be
checked end to end against the demo's own ``/openapi.json``.  Nothing is
stored: the demo is a load-test target.

(No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations, and the
caller's ``Owner`` dependency exists only inside :func:`add_order_forms`.)
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request

from loadstack_demo.echo import parse_multipart, parse_urlencoded

ATTACHMENT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["description", "file"],
                "properties": {
                    "description": {"type": "string", "maxLength": 200, "example": "signed delivery note"},
                    "file": {"type": "string", "format": "binary"},
                },
            },
            "encoding": {"file": {"contentType": "application/pdf"}},
        }
    },
}
NOTE_BODY = {
    "required": True,
    "content": {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["text", "visibility"],
                "properties": {
                    "text": {"type": "string", "maxLength": 500, "example": "leave at the door & ring"},
                    "visibility": {"type": "string", "enum": ["internal", "customer"]},
                },
            }
        }
    },
}


def add_order_forms(app: FastAPI, current_user: Callable[..., Any]) -> None:
    """The two routes; ``current_user`` is the dependency that authenticates the caller (as for orders)."""
    Owner = Annotated[int, Depends(current_user)]

    async def _order(request: Request, owner: int, order_id: int) -> None:
        platform = request.app.state.platform
        if await platform.run(platform.store.get_order, owner, order_id) is None:
            raise HTTPException(404, detail=f"order {order_id} not found")

    @app.post(
        "/api/v1/orders/{order_id}/attachments",
        status_code=201,
        tags=["orders"],
        responses={404: {"description": "Not Found"}},
        openapi_extra={"requestBody": ATTACHMENT_BODY},
    )
    async def add_attachment(order_id: int, request: Request, owner: Owner) -> dict:
        await _order(request, owner, order_id)
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise HTTPException(415, detail=f"expected multipart/form-data, got {content_type!r}")
        try:
            parsed = parse_multipart(content_type, await request.body())
        except ValueError as exc:
            raise HTTPException(400, detail=str(exc)) from None
        if not parsed["files"]:
            raise HTTPException(400, detail="no file part")
        return {"order_id": order_id, **parsed}

    @app.post(
        "/api/v1/orders/{order_id}/notes",
        status_code=201,
        tags=["orders"],
        responses={404: {"description": "Not Found"}},
        openapi_extra={"requestBody": NOTE_BODY},
    )
    async def add_note(order_id: int, request: Request, owner: Owner) -> dict:
        await _order(request, owner, order_id)
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            raise HTTPException(
                415, detail=f"expected application/x-www-form-urlencoded, got {content_type!r}"
            )
        return {"order_id": order_id, "fields": parse_urlencoded(await request.body())}
