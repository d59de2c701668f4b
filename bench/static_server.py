"""A minimal static HTTP/1.1 endpoint for the generator benchmarks (``python -m bench.static_server``).

It must be cheap enough that the load generator, not the server, is the bottleneck: a raw
asyncio protocol on uvloop (both already installed with uvicorn), keep-alive, the same small
response to every request, no routing, no parsing beyond finding the end of each request
head.  Requests are counted; ``GET /__bench`` answers the count and the time of the first
request (for the start-up benchmark), ``GET /__bench/reset`` zeroes both; neither is counted.  Bodies are not supported:
the benches send GETs only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

BODY = b"ok\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)
STATS_PATH = b"GET /__bench "
RESET_PATH = b"GET /__bench/reset "


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.first: float | None = None


class StaticProtocol(asyncio.Protocol):
    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        out = []
        start = 0
        while True:
            end = buffer.find(b"\r\n\r\n", start)
            if end < 0:
                break
            if buffer.startswith(RESET_PATH, start):
                self.counter.count, self.counter.first = 0, None
            if buffer.startswith(STATS_PATH, start) or buffer.startswith(RESET_PATH, start):
                body = json.dumps({"count": self.counter.count, "first": self.counter.first}).encode()
                out.append(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
            else:
                if self.counter.first is None:
                    self.counter.first = time.time()
                self.counter.count += 1
                out.append(RESPONSE)
            start = end + 4
        self.buffer = buffer[start:]
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def serve(host: str, port: int) -> None:
    counter = Counter()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: StaticProtocol(counter), host, port, backlog=2048)
    print(f"static server on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # plain asyncio still works, only slower
        pass
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
