"""Durations as users write them: ``90``, ``250ms``, ``30s``, ``5m``, ``1h30m``, ``1.5s``.

Locust's own timespan syntax plus milliseconds.  Parsed here rather than with
``locust.util.timespan``: importing anything from locust gevent-patches the
process, and neither the runner nor the demo platform may be patched.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

# The longest duration anything may last or wait: a month (a soak test runs hours or days).
MAX_SECONDS = 30 * 86400

_PLAIN = re.compile(r"^\d+(?:\.\d+)?$")
_MS = re.compile(r"^(?P<n>\d+(?:\.\d+)?)ms$")
_TIMESPAN = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?$")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ``ValueError`` with the accepted forms otherwise.

    At most :data:`MAX_SECONDS`: ``99999999h`` is a typo, not a plan.
    """
    text = text.strip()
    if len(text) > 40:
        raise ValueError(f"invalid duration {text[:40]!r}…; use e.g. 30, 250ms, 30s, 5m or 1h30m")
    if _PLAIN.fullmatch(text):
        return check_seconds(float(text))
    if ms := _MS.fullmatch(text):
        return check_seconds(float(ms["n"]) / 1000.0)
    match = _TIMESPAN.fullmatch(text)
    if not text or not match:
        raise ValueError(f"invalid duration {text!r}; use e.g. 30, 250ms, 30s, 5m or 1h30m")
    return check_seconds(int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60 + float(match["s"] or 0))


def check_seconds(seconds: float) -> float:
    """``seconds`` when it is a finite duration of at most :data:`MAX_SECONDS`, else ``ValueError``."""
    if isinstance(seconds, float) and not math.isfinite(seconds):
        raise ValueError(f"a duration must be finite, got {seconds}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"at most {MAX_SECONDS // 86400} days ({MAX_SECONDS} s), got {seconds:g} s")
    return seconds


def to_seconds(value: Any) -> Any:
    """pydantic pre-validator: numbers are seconds, strings are parsed."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 250ms, 30s or 5m")
    if isinstance(value, int | float):
        return check_seconds(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError("expected a duration such as 250ms, 30s or 5m")


Seconds = Annotated[float, BeforeValidator(to_seconds), Field(ge=0)]
PositiveSeconds = Annotated[float, BeforeValidator(to_seconds), Field(gt=0)]
