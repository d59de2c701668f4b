"""Durations as users write them: ``90``, ``250ms``, ``30s``, ``5m``, ``1h30m``, ``1.5s``.

Locust's own timespan syntax plus milliseconds.  Parsed here rather than with
``locust.util.timespan``: importing anything from locust gevent-patches the
process, and neither the runner nor the demo platform may be patched.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

_PLAIN = re.compile(r"^\d+(?:\.\d+)?$")
_MS = re.compile(r"^(?P<n>\d+(?:\.\d+)?)ms$")
_TIMESPAN = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?$")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ``ValueError`` with the accepted forms otherwise."""
    text = text.strip()
    if _PLAIN.match(text):
        return float(text)
    if ms := _MS.match(text):
        return float(ms["n"]) / 1000.0
    match = _TIMESPAN.match(text)
    if not text or not match:
        raise ValueError(f"invalid duration {text!r}; use e.g. 30, 250ms, 30s, 5m or 1h30m")
    return int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60 + float(match["s"] or 0)


def to_seconds(value: Any) -> Any:
    """pydantic pre-validator: numbers are seconds, strings are parsed."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 250ms, 30s or 5m")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError("expected a duration such as 250ms, 30s or 5m")


Seconds = Annotated[float, BeforeValidator(to_seconds), Field(ge=0)]
PositiveSeconds = Annotated[float, BeforeValidator(to_seconds), Field(gt=0)]
