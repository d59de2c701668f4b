"""One bearer token per process, shared by every user and refreshed before it expires.

A thousand users must not mean a thousand token requests: the first caller
that finds the token due for refresh fetches a new one (single flight); the
others keep using the current token while it is still valid, or wait for the
fetch when there is none.  After a failed fetch, callers fail fast for a short,
growing back-off instead of hammering the provider.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# A fetch reports (name, milliseconds, response length, exception or None).
Report = Callable[[str, float, int, BaseException | None], None]


class AuthError(Exception):
    """No token could be obtained; the message says why (never contains a secret)."""


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # time.monotonic()
    lifetime: float
    size: int = 0  # bytes of the provider's answer, for the AUTH stat entry

    def valid(self, now: float) -> bool:
        return now < self.expires_at

    def due(self, now: float, margin: float) -> bool:
        # Short-lived tokens refresh after 75% of their life at the latest.
        return now >= self.expires_at - min(margin, self.lifetime * 0.25)


class TokenCache:
    """Caches what ``fetch`` returns; thread- and greenlet-safe (Locust patches threading)."""

    def __init__(
        self,
        fetch: Callable[[], Token],
        *,
        name: str,
        margin: float = 30.0,
        report: Report | None = None,
        max_backoff: float = 30.0,
    ) -> None:
        self._fetch = fetch
        self.name = name
        self.margin = margin
        self.report = report
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._error: AuthError | None = None
        self._retry_at = 0.0
        self._backoff = 0.0
        self._max_backoff = max_backoff
        self.fetches = 0

    def get(self) -> str:
        """The current token's value, fetching or refreshing it when due."""
        now = time.monotonic()
        token = self._token
        if token is not None and not token.due(now, self.margin):
            return token.value
        if token is not None and token.valid(now):
            # Due but still valid: one caller refreshes, the rest carry on with the old token.
            if self._lock.acquire(blocking=False):
                try:
                    self._refresh_locked()
                except AuthError:
                    pass  # still valid; the failure is reported and retried after the back-off
                finally:
                    self._lock.release()
            return (self._token or token).value
        with self._lock:
            token = self._token
            if token is not None and token.valid(time.monotonic()):
                return token.value  # someone refreshed while we waited
            self._refresh_locked()
            assert self._token is not None
            return self._token.value

    def _refresh_locked(self) -> None:
        now = time.monotonic()
        if now < self._retry_at and self._error is not None:
            raise self._error
        started = time.perf_counter()
        self.fetches += 1
        try:
            token = self._fetch()
        except AuthError as exc:
            self._report((time.perf_counter() - started) * 1000, 0, exc)
            self._error = exc
            self._backoff = min(self._max_backoff, max(1.0, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff
            raise
        self._report((time.perf_counter() - started) * 1000, token.size, None)
        self._token, self._error, self._backoff, self._retry_at = token, None, 0.0, 0.0

    def _report(self, ms: float, size: int, exc: BaseException | None) -> None:
        if self.report is not None:
            self.report(self.name, ms, size, exc)

    def info(self) -> dict[str, Any]:
        token = self._token
        return {
            "fetches": self.fetches,
            "expires_in": round(token.expires_at - time.monotonic(), 1) if token else None,
        }
