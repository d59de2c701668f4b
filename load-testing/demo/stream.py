"""The ``/ws/stream`` WebSocket: a live data feed driven by JSON commands.

Protocol (client → server):
  ``{"cmd": "start", "rate"?: hz, "channels"?: n}``  ack, then data frames
  ``{"cmd": "configure", "rate"?: hz, "channels"?: n}``  ack with the new config
  ``{"cmd": "stop"}``  ack; data frames stop
  ``{"cmd": "ping"}``  ``{"type": "pong"}``
Server → client frames: ``{"type": "data", "seq": n, "ts": unix_seconds, "values": [...]}``,
``{"type": "ack", "cmd": ..., "config": {...}}`` and ``{"type": "error", "error": ...}``.
A malformed message gets an error frame; the socket stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from dataclasses import dataclass

from fastapi import WebSocket, WebSocketDisconnect

MAX_RATE_HZ = 1000
MAX_CHANNELS = 16


@dataclass
class ConnectionStats:
    current: int = 0
    peak: int = 0
    total: int = 0

    def opened(self) -> None:
        self.current += 1
        self.total += 1
        self.peak = max(self.peak, self.current)

    def closed(self) -> None:
        self.current -= 1


class StreamSession:
    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.rate = 10.0
        self.channels = 2
        self.seq = 0
        self._sender: asyncio.Task | None = None
        self._send_lock = asyncio.Lock()

    async def send(self, frame: dict) -> None:
        async with self._send_lock:
            await self.ws.send_text(json.dumps(frame, separators=(",", ":")))

    def config(self) -> dict:
        return {"rate": self.rate, "channels": self.channels, "running": self._sender is not None}

    def apply(self, msg: dict) -> str | None:
        """Apply rate/channels from a command; an error message if they are out of range."""
        rate = msg.get("rate", self.rate)
        channels = msg.get("channels", self.channels)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= MAX_RATE_HZ:
            return f"rate must be a number in (0, {MAX_RATE_HZ}]"
        if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= MAX_CHANNELS:
            return f"channels must be an integer in [1, {MAX_CHANNELS}]"
        self.rate, self.channels = float(rate), channels
        return None

    async def _produce(self) -> None:
        next_at = time.monotonic()
        while True:
            self.seq += 1
            now = time.time()
            values = [round(math.sin(now * (c + 1)), 4) for c in range(self.channels)]
            await self.send({"type": "data", "seq": self.seq, "ts": now, "values": values})
            next_at += 1.0 / self.rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def start(self) -> None:
        if self._sender is None:
            self._sender = asyncio.create_task(self._produce())

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await self._sender
            self._sender = None

    async def handle(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            await self.send({"type": "error", "error": f"malformed JSON: {exc.msg}"})
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("cmd"), str):
            await self.send({"type": "error", "error": "expected an object with a string 'cmd'"})
            return
        cmd = msg["cmd"]
        if cmd in ("start", "configure"):
            if problem := self.apply(msg):
                await self.send({"type": "error", "cmd": cmd, "error": problem})
                return
            if cmd == "start":
                self.start()
            await self.send({"type": "ack", "cmd": cmd, "config": self.config()})
        elif cmd == "stop":
            await self.stop()
            await self.send({"type": "ack", "cmd": "stop", "config": self.config()})
        elif cmd == "ping":
            await self.send({"type": "pong", "ts": time.time()})
        else:
            await self.send({"type": "error", "cmd": cmd, "error": f"unknown cmd {cmd!r}"})


async def serve_stream(ws: WebSocket, stats: ConnectionStats) -> None:
    await ws.accept()
    stats.opened()
    session = StreamSession(ws)
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"].decode("utf-8", errors="replace")
            await session.handle(text or "")
    except WebSocketDisconnect:
        pass
    finally:
        await session.stop()
        stats.closed()
