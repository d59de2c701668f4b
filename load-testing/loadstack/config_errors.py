"""The error every input check raises: which file, which line, which field, and what to do.

Its own module so that :mod:`loadstack.settings` (which checks environment variables) and
:mod:`loadstack.configfile` (which reads files, and asks the settings for its size cap) can both
raise it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ConfigIssue:
    path: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(Exception):
    """One or more problems in a configuration file; exit status 2 territory."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))
