"""Wait for the system under test before the first user starts, as the master waits for its workers.

In a cluster every part starts at once: the master Job, its workers and a target deployed beside
them.  A master that starts before the target answers spends its first seconds counting refused
connections and ends with a failed run (exit 1, or 3 with gates) that says nothing about the
target.  So the master asks the target's health path first, bounded by ``LOADSTACK_TARGET_WAIT``
seconds, and ends with exit 2 (bad input: nothing was sent) if it never answers.

"Answers" is any HTTP status below 500: a 404 is a server that is up but has no such path (a
platform without ``/health``), while 5xx is a gateway with nothing behind it and a refused
connection is nothing at all.  Redirects are not followed: an answer is an answer.  Every attempt
goes through :func:`loadstack.safety.urlopen`, so the target guard applies to it as to the load.
"""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass

import gevent

from loadstack import safety

ATTEMPT_TIMEOUT_S = 5.0
RETRY_INTERVAL_S = 1.0


@dataclass
class Outcome:
    """How the wait ended: ``ready`` with the status seen, else the last problem."""

    ready: bool
    waited_s: float
    attempts: int
    last: str


def health_url(host: str, path: str) -> str:
    return host.rstrip("/") + path


def probe(url: str, *, allow_remote: bool, timeout: float = ATTEMPT_TIMEOUT_S) -> tuple[bool, str]:
    """One GET of ``url``: (answers, what was seen)."""
    try:
        with safety.urlopen(url, allow_remote=allow_remote, timeout=timeout) as response:
            return True, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return exc.code < 500, f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:  # refused, unresolvable, timed out, TLS; ValueError: the guard
        reason = getattr(exc, "reason", None) or exc
        return False, f"{type(reason).__name__}: {reason}"


def wait(
    url: str,
    *,
    allow_remote: bool,
    limit_s: float,
    stop: Callable[[], bool] = lambda: False,
) -> Outcome:
    """Ask ``url`` until it answers, ``limit_s`` passes, or ``stop()`` (SIGTERM) says to give up.

    Sleeps with gevent: the master's signal handlers and its workers' heartbeats run meanwhile.
    """
    started = time.monotonic()
    attempts = 0
    last = "not asked"
    while True:
        attempts += 1
        remaining = limit_s - (time.monotonic() - started)
        ok, last = probe(url, allow_remote=allow_remote, timeout=max(0.5, min(ATTEMPT_TIMEOUT_S, remaining)))
        waited = time.monotonic() - started
        if ok or stop() or waited >= limit_s:
            return Outcome(ok, waited, attempts, last)
        gevent.sleep(min(RETRY_INTERVAL_S, max(0.0, limit_s - waited)))
