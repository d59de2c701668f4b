"""The users' objects kept out of Python's cyclic garbage collector once they are spawned.

A worker with thousands of users holds hundreds of thousands of long-lived objects (users,
clients, sockets, greenlets).  Python's full collection walks every one of them, on the gevent
loop: at 5,000 HTTP users each full collection stalled every user for hundreds of milliseconds,
most of the loop lag of such a worker (docs/performance.md, "Users per worker").  ``gc.freeze()`` moves the objects
that exist into a generation the collector never scans; freezing costs nothing, so it is done once
spawning is complete, when the heap is the users'.

Frozen objects are still freed when nothing refers to them; only cyclic garbage among them waits.
Users that stop leave such cycles, so when the user count shrinks by a tenth or more, and when
the test stops, the heap is unfrozen and collected (one pause) before the next freeze.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from locust.env import Environment

log = logging.getLogger("loadstack.heap")

CHANGE = 0.10  # a change of the user count smaller than this share keeps the last freeze


class FrozenUsers:
    """Freezes the heap at each completed spawn that changed the user count by ``CHANGE`` or more."""

    def __init__(self) -> None:
        self.frozen_users = 0  # the user count at the last freeze (0: nothing frozen by us)
        self.freezes = 0

    def attach(self, environment: Environment) -> None:
        environment.events.spawning_complete.add_listener(self._on_spawned)
        environment.events.test_stop.add_listener(self._on_stop)

    def _on_spawned(self, user_count: int = 0, **_: Any) -> None:
        if self.frozen_users and abs(user_count - self.frozen_users) < CHANGE * self.frozen_users:
            return
        if user_count < self.frozen_users:  # stopped users' cycles are frozen: let them go first
            self.thaw()
        gc.freeze()
        self.frozen_users = max(user_count, 1)
        self.freezes += 1
        log.debug(
            "heap frozen at %d users: %d objects out of the collector's scans",
            user_count,
            gc.get_freeze_count(),
        )

    def _on_stop(self, **_: Any) -> None:
        if self.frozen_users:
            self.thaw()

    def thaw(self) -> None:
        """Back under the collector, and collected once: what stopped users left is freed."""
        gc.unfreeze()
        gc.collect()
        self.frozen_users = 0
