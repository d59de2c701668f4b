"""The demo platform's HTTP + WebSocket API (FastAPI).

It stands in for a real service platform so ``loadstack run`` works out of
the box: auth, orders, payments, an oscilloscope-like instrument and a
streaming WebSocket.  FastAPI gives the 422 validation errors and the
``/openapi.json`` document for free.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from loadstack_demo import echo
from loadstack_demo.attachments import add_order_forms
from loadstack_demo.auth import (
    LocalTrust,
    OAuthClients,
    OAuthError,
    Principal,
    TokenError,
    TokenIssuer,
    check_password,
    hash_password,
    parse_form,
    principal_email,
)
from loadstack_demo.browser_pages import add_form_login, add_upload_page
from loadstack_demo.oscilloscope import Oscilloscope, OscilloscopeConfig
from loadstack_demo.store import MemoryStore, Store
from loadstack_demo.stream import ConnectionStats, serve_stream

log = logging.getLogger("loadstack.demo")
UNAVAILABLE_LOG_INTERVAL = 5.0  # seconds between log lines while a backend is down
RUN_ID_HEADER = "X-Loadstack-Run-Id"
CONSOLE = Path(__file__).parent / "console"


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses an operation can legitimately answer."""
    return {s: {"description": HTTPStatus(s).phrase} for s in statuses}


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)
    password: str = Field(min_length=8, max_length=128)
    name: str = Field(default="", max_length=100)


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=254)
    password: str = Field(max_length=128)


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=1000)
    amount: float = Field(gt=0, le=1_000_000)
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: int | None = Field(default=None, ge=1)
    amount: float = Field(gt=0, le=1_000_000)
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    method: Literal["card", "sepa", "paypal", "voucher"] = "card"


@dataclass
class Platform:
    """Everything a request handler may touch."""

    store: Store
    tokens: TokenIssuer = field(default_factory=TokenIssuer)
    oauth: OAuthClients = field(default_factory=OAuthClients)
    principals: dict[str, int] = field(default_factory=dict)
    oscilloscope: Oscilloscope = field(default_factory=Oscilloscope)
    ws: ConnectionStats = field(default_factory=ConnectionStats)
    started: float = field(default_factory=time.time)
    blocking_store: bool = False
    store_reason: str = ""

    unavailable_logged: float = 0.0  # when the last "store unavailable" line was logged
    unavailable_since_log: int = 0  # answers 503 since then (one line per interval, not per request)

    async def run(self, fn: Any, *args: Any) -> Any:
        """Call a store method; blocking stores (network I/O) go to the thread pool.

        A backend that is down (PostgreSQL stopped, Redis gone) is the platform being unavailable,
        not a bug in it: the answer is 503, and the log gets one line, at most every
        :data:`UNAVAILABLE_LOG_INTERVAL` seconds, instead of a traceback per request.
        """
        try:
            if self.blocking_store:
                return await run_in_threadpool(fn, *args)
            return fn(*args)
        except getattr(self.store, "unavailable", ()) as exc:
            self.unavailable_since_log += 1
            now = time.monotonic()
            if now - self.unavailable_logged >= UNAVAILABLE_LOG_INTERVAL:
                reason = " ".join(str(exc).split())[:200] or type(exc).__name__
                log.warning(
                    "503 (%d since the last line): the %s store is unavailable: %s: %s",
                    self.unavailable_since_log, self.store.kind, type(exc).__name__, reason,
                )  # fmt: skip
                self.unavailable_logged, self.unavailable_since_log = now, 0
            raise HTTPException(
                HTTPStatus.SERVICE_UNAVAILABLE, "a backend of the platform is unavailable"
            ) from None

    async def user_of(self, principal: Principal) -> int:
        """The user record owning a caller's data; service identities get one on first use."""
        if principal.user_id is not None:
            return principal.user_id
        known = self.principals.get(principal.sub)
        if known is not None:
            return known
        email = principal_email(principal.sub)
        user = await self.run(self.store.get_user_by_email, email)
        if user is None:
            password = hash_password(principal.sub + str(time.time_ns()))
            user = await self.run(self.store.create_user, email, principal.sub[:100], password, None)
            user = user or await self.run(self.store.get_user_by_email, email)  # lost a creation race
        self.principals[principal.sub] = user.id
        return user.id


async def current_principal(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """The caller; 401 for a missing or invalid bearer token (async: no thread hop)."""
    try:
        return request.app.state.platform.tokens.verify(authorization)
    except TokenError as exc:
        raise HTTPException(401, detail=str(exc), headers={"WWW-Authenticate": "Bearer"}) from None


async def current_user(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> int:
    return await request.app.state.platform.user_of(principal)


User = Annotated[int, Depends(current_user)]
RunId = Annotated[str | None, Header(alias=RUN_ID_HEADER)]


def create_app(
    store: Store | None = None, *, blocking_store: bool = False, secret: str | None = None
) -> FastAPI:
    platform = Platform(
        store=store or MemoryStore(),
        tokens=TokenIssuer(secret, local=LocalTrust.from_env()),
        blocking_store=blocking_store,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await platform.run(platform.store.close)

    app = FastAPI(
        title="loadstack demo platform",
        version="1.0.0",
        description="The built-in system under test of loadstack.",
        lifespan=lifespan,
    )
    app.state.platform = platform

    @app.get("/health", tags=["ops"])
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/api/status", tags=["ops"])
    async def status() -> dict:
        return {
            "status": "ok",
            "uptime_s": round(time.time() - platform.started, 3),
            "store": platform.store.kind,
            "store_reason": platform.store_reason,
            "counts": await platform.run(platform.store.counts),
            "ws": {"connections": platform.ws.current, "peak": platform.ws.peak, "total": platform.ws.total},
            "oscilloscope": {"running": platform.oscilloscope.running},
            "auth": {
                "oauth_tokens_issued": platform.oauth.issued,
                "local_jwt": platform.tokens.local.algorithm if platform.tokens.local else None,
            },
        }

    @app.post(
        "/oauth/token",
        tags=["auth"],
        responses=documented(400, 401, 503),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["grant_type"],
                            "properties": {
                                "grant_type": {"type": "string", "enum": ["client_credentials"]},
                                "client_id": {"type": "string"},
                                "client_secret": {"type": "string"},
                                "scope": {"type": "string"},
                            },
                        }
                    }
                },
            }
        },
    )
    async def oauth_token(request: Request) -> Any:
        """OAuth2 client credentials (RFC 6749 §4.4): HTTP Basic or form-field client authentication."""
        form = parse_form(await request.body())
        try:
            answer = platform.oauth.grant(form, request.headers.get("authorization"), platform.tokens)
        except OAuthError as exc:
            headers = {"WWW-Authenticate": "Basic"} if exc.status == 401 else None
            return JSONResponse(
                {"error": exc.error, "error_description": exc.description}, exc.status, headers=headers
            )
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    @app.get("/api/v1/auth/me", tags=["auth"], responses=documented(401))
    async def me(principal: Annotated[Principal, Depends(current_principal)]) -> dict:
        return {"sub": principal.sub, "kind": principal.kind, "user_id": await platform.user_of(principal)}

    @app.post("/api/v1/auth/register", status_code=201, tags=["auth"], responses=documented(409))
    async def register(body: RegisterIn, run_id: RunId = None) -> dict:
        user = await platform.run(
            platform.store.create_user, body.email.lower(), body.name, hash_password(body.password), run_id
        )
        if user is None:
            raise HTTPException(409, detail="email already registered")
        return {"id": user.id, "email": user.email, "name": user.name}

    @app.post("/api/v1/auth/login", tags=["auth"], responses=documented(401))
    async def login(body: LoginIn) -> dict:
        user = await platform.run(platform.store.get_user_by_email, body.email.lower())
        if user is None or not check_password(body.password, user.password_hash):
            raise HTTPException(
                401, detail="invalid email or password", headers={"WWW-Authenticate": "Bearer"}
            )
        return platform.tokens.issue(user.id, user.email)

    @app.post("/api/v1/orders", status_code=201, tags=["orders"])
    async def create_order(body: OrderIn, user: User, run_id: RunId = None) -> dict:
        order = await platform.run(
            platform.store.create_order, user, body.sku, body.quantity, body.amount, body.currency, run_id
        )
        return order.public()

    @app.get("/api/v1/orders", tags=["orders"])
    async def list_orders(user: User, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict:
        orders = await platform.run(platform.store.list_orders, user, limit)
        return {"items": [o.public() for o in orders], "count": len(orders)}

    add_order_forms(app, current_user)  # multipart attachments and urlencoded notes, documented

    @app.get("/api/v1/orders/{order_id}", tags=["orders"], responses=documented(404))
    async def get_order(order_id: int, user: User) -> dict:
        order = await platform.run(platform.store.get_order, user, order_id)
        if order is None:
            raise HTTPException(404, detail=f"order {order_id} not found")
        return order.public()

    @app.post("/api/v1/payments", status_code=201, tags=["payments"], responses=documented(404))
    async def create_payment(body: PaymentIn, user: User, run_id: RunId = None) -> dict:
        if (
            body.order_id is not None
            and await platform.run(platform.store.get_order, user, body.order_id) is None
        ):
            raise HTTPException(404, detail=f"order {body.order_id} not found")
        payment = await platform.run(
            platform.store.create_payment,
            user,
            body.order_id,
            body.amount,
            body.currency,
            body.method,
            run_id,
        )
        return payment.public()

    @app.get("/api/v1/payments", tags=["payments"])
    async def list_payments(user: User, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict:
        payments = await platform.run(platform.store.list_payments, user, limit)
        return {"items": [p.public() for p in payments], "count": len(payments)}

    @app.get("/api/oscilloscope/config", tags=["oscilloscope"])
    async def get_config() -> OscilloscopeConfig:
        return platform.oscilloscope.config

    @app.put("/api/oscilloscope/config", tags=["oscilloscope"])
    async def put_config(body: OscilloscopeConfig) -> OscilloscopeConfig:
        platform.oscilloscope.config = body
        return body

    @app.get("/api/oscilloscope/status", tags=["oscilloscope"])
    async def osc_status() -> dict:
        return platform.oscilloscope.status()

    @app.post("/api/oscilloscope/start", tags=["oscilloscope"])
    async def osc_start() -> dict:
        platform.oscilloscope.start()
        return platform.oscilloscope.status()

    @app.post("/api/oscilloscope/stop", tags=["oscilloscope"])
    async def osc_stop() -> dict:
        platform.oscilloscope.stop()
        return platform.oscilloscope.status()

    @app.get("/api/oscilloscope/snapshot", tags=["oscilloscope"])
    async def osc_snapshot() -> dict:
        return platform.oscilloscope.snapshot()

    @app.websocket("/ws/stream")
    async def stream(ws: WebSocket) -> None:
        await serve_stream(ws, platform.ws)

    echo.add_routes(app)  # what a client sent: form fields, multipart uploads, raw bodies
    add_form_login(app)  # a server-rendered sign-in with a hidden CSRF token, for browser recordings
    add_upload_page(app)  # a multipart form posting to the upload echo

    # A small browser console that walks through the API: what `loadstack import har` is tested on.
    @app.get("/", include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(CONSOLE / "index.html")

    app.mount("/static", StaticFiles(directory=CONSOLE / "static"), name="static")
    return app
