"""YAML/JSON configuration files validated by pydantic, with errors that name file, line and field.

Profiles, chains and SLO files all go through here so a mistake in any of them
reads the same way: ``profiles/x.yml:7: users: must be >= 1 (got -5)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


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


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the YAML node at ``loc``, or of the deepest ancestor that exists."""
    if node is None:
        return None
    best = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == str(part):
                    child = value_node if not isinstance(value_node, yaml.ScalarNode) else key_node
                    # For scalars, the key's line is where the user looks.
                    if isinstance(value_node, yaml.ScalarNode):
                        return key_node.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            return best
        node = child
        best = node.start_mark.line + 1
    return best


def field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(err: dict[str, Any], model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see the documented fields)"
    if kind == "missing":
        return "required field is missing"
    msg = err["msg"]
    given = err.get("input")
    if not isinstance(given, dict | list) and kind not in ("value_error", "assertion_error"):
        msg = f"{msg} (got {given!r})"
    return msg.removeprefix("Value error, ")


def read_document(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML or JSON file into plain data plus the YAML node tree (for line numbers)."""
    shown = str(path)
    if not path.is_file():
        raise ConfigError([ConfigIssue(shown, None, "", "file not found")])
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            return json.loads(text), None
        except json.JSONDecodeError as exc:
            raise ConfigError([ConfigIssue(shown, exc.lineno, "", f"invalid JSON: {exc.msg}")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(shown, line, "", f"invalid YAML: {problem}")]) from None
    return data, node


def validate(model: type[M], data: Any, node: yaml.Node | None, path: Path | str, context: Any = None) -> M:
    """Validate ``data`` against ``model``; every error names the file, line and field path."""
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(str(path), 1, "", "expected a mapping of fields at the top level")])
    # `file` tells validators the data comes from a user's file (fields loadstack sets are refused).
    context = {"file": True, **context} if isinstance(context, dict) else (context or {"file": True})
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            # pydantic adds the union member / validator name into loc; keep only data keys.
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            issues.append(
                ConfigIssue(str(path), line_of(node, loc), field_path(loc), _describe(err, model, loc))
            )
        raise ConfigError(issues) from None


def load(model: type[M], path: Path, context: Any = None) -> M:
    data, node = read_document(path)
    return validate(model, data, node, path, context)
