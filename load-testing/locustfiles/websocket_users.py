"""WebSocket users for the demo platform's ``/ws/stream`` — a plain Locust file to copy and adapt.

One task is one protocol cycle: connect, start (timed until the first data
frame), receive N frames (each frame's latency = receive time − server
timestamp), configure (until ack), receive again, stop (until ack), disconnect.
Every step is its own ``WS`` entry in Locust's stats.

Knobs (environment): ``LOADSTACK_WS_FRAMES`` frames per receive step (20),
``LOADSTACK_WS_RATE`` frames per second (20), ``LOADSTACK_WS_KEEP_OPEN=1``
keeps one connection for the user's lifetime instead of one per cycle.
"""

from __future__ import annotations

import random

from locust import between, task

from loadstack.settings import current
from loadstack.users.websocket import WebSocketUser, ack_for

FRAMES = current().ws_frames
RATE = current().ws_rate
KEEP_OPEN = current().ws_keep_open


def is_data(frame: dict) -> bool:
    return frame.get("type") == "data"


class StreamUser(WebSocketUser):
    wait_time = between(1, 3)
    path = "/ws/stream"
    disconnect_name = "stream/disconnect"

    @task
    def stream_cycle(self) -> None:
        if not self.client.connected:
            self.client.connect(self.path, name="stream/connect")
        self.client.request("stream/start", {"cmd": "start", "rate": RATE, "channels": 2}, until=is_data)
        self.client.receive("stream/receive", FRAMES)
        channels = random.randint(1, 4)
        self.client.request(
            "stream/configure", {"cmd": "configure", "channels": channels}, until=ack_for("configure")
        )
        self.client.receive("stream/receive", max(1, FRAMES // 2))
        self.client.request("stream/stop", {"cmd": "stop"}, until=ack_for("stop"))
        if not KEEP_OPEN:
            self.client.close(name="stream/disconnect")
