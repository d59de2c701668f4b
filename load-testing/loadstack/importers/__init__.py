"""Scenario generation from what already exists: browser recordings (HAR) and API definitions (OpenAPI).

Both importers build the same :class:`~loadstack.importers.model.Scenario` (an
ordered list of HTTP calls whose values may refer to variables captured from
earlier responses) and hand it to a writer: a chain YAML file
(:mod:`~loadstack.importers.chain_writer`) or a plain locustfile
(:mod:`~loadstack.importers.locust_writer`).
"""

from __future__ import annotations


class ImportProblem(Exception):
    """An input that cannot be imported; the message names the file and what to do (exit 2)."""


def printable(line: str) -> str:
    """Recorded text fit for a console or a comment line: control characters, terminal escapes and
    line separators are shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)
