"""An oscilloscope-like instrument behind ``/api/oscilloscope/*``: config, start/stop and snapshots."""

from __future__ import annotations

import math
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SNAPSHOT_POINTS = 128


class OscilloscopeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate_hz: float = Field(default=1000.0, gt=0, le=1_000_000)
    channels: int = Field(default=2, ge=1, le=8)
    timebase_ms: float = Field(default=10.0, gt=0, le=10_000)
    trigger_level: float = Field(default=0.0, ge=-10, le=10)
    trigger_mode: Literal["auto", "normal", "single"] = "auto"


class Oscilloscope:
    def __init__(self) -> None:
        self.config = OscilloscopeConfig()
        self.running = False
        self.started_at: float | None = None
        self.captures = 0

    def start(self) -> None:
        if not self.running:
            self.running, self.started_at = True, time.time()

    def stop(self) -> None:
        self.running, self.started_at = False, None

    def status(self) -> dict:
        return {
            "running": self.running,
            "started_at": self.started_at,
            "captures": self.captures,
            "config": self.config.model_dump(),
        }

    def snapshot(self) -> dict:
        """One screen of samples per channel: phase-shifted sines over the timebase."""
        self.captures += 1
        now = time.time()
        cfg = self.config
        step = cfg.timebase_ms / 1000.0 / SNAPSHOT_POINTS
        traces = [
            [round(math.sin(2 * math.pi * 50 * (now + i * step) + c), 4) for i in range(SNAPSHOT_POINTS)]
            for c in range(cfg.channels)
        ]
        return {"running": self.running, "ts": now, "config": cfg.model_dump(), "traces": traces}
