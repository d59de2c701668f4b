"""The JSON paths chains use in ``save:`` and ``expect:`` (``$.items[0].id``, ``$['a key']``).

A deliberately small subset: child names, array indexes and quoted names.
"""

from __future__ import annotations

import re
from typing import Any

_PATH_TOKEN = re.compile(r"\.([A-Za-z_][\w\-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def parse_json_path(path: str) -> list[str | int]:
    """``$.items[0].id`` → ``["items", 0, "id"]``; ``ValueError`` for anything else."""
    if not path.startswith("$"):
        raise ValueError(f"JSON path must start with '$': {path!r}")
    parts: list[str | int] = []
    pos = 1
    for m in _PATH_TOKEN.finditer(path, 1):
        if m.start() != pos:
            break
        key, index, quoted1, quoted2 = m.groups()
        parts.append(int(index) if index is not None else (key or quoted1 or quoted2 or ""))
        pos = m.end()
    if pos != len(path):
        raise ValueError(f"bad JSON path {path!r} near position {pos}")
    return parts


def json_get(doc: Any, parts: list[str | int]) -> Any:
    cur = doc
    for part in parts:
        if (isinstance(part, int) and isinstance(cur, list) and part < len(cur)) or (
            isinstance(part, str) and isinstance(cur, dict) and part in cur
        ):
            cur = cur[part]
        else:
            raise KeyError(part)
    return cur
