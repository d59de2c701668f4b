"""YAML/JSON configuration files validated by pydantic, with errors that name file, line and field.

Profiles, chains and SLO files all go through here so a mistake in any of them
reads the same way: ``profiles/x.yml:7: users: must be >= 1 (got -5)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from loadstack.config_errors import ConfigError, ConfigIssue

M = TypeVar("M", bound=BaseModel)


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
        from loadstack.masking import is_secret_name

        # A secret's field (`env: {LOADSTACK_JWT_SECRET: 12345678}`) does not echo its value.
        secret = any(isinstance(p, str) and is_secret_name(p) for p in loc)
        shown = f"a value of type {type(given).__name__}, not shown: a secret" if secret else repr(given)
        msg = f"{msg} (got {shown})"
    return msg.removeprefix("Value error, ")


# -- reading: bounded, so a hostile or broken file is an error and never a hang or a crash ----------
DEFAULT_MAX_INPUT_MB = 5.0
# Nesting levels of a document (aliases expanded): far beyond any real profile, chain or SLO file.
MAX_DEPTH = 64
# Values YAML aliases may add to a file once expanded: room for shared header blocks, not for a
# "billion laughs" document that expands a few lines into gigabytes.
ALIAS_BUDGET = 10_000
# Values in one file: a profile, chain or SLO file has hundreds; reading 100 000 takes about a second.
MAX_VALUES = 100_000
_max_input_mb: float | None = None
# Digits of a whole number in a file: every count, port and bound is far shorter, and Python refuses to
# convert more than 4300 (a ValueError deep inside the YAML or JSON parser).  Checked before conversion.
MAX_DIGITS = 64
_INT_TAG = "tag:yaml.org,2002:int"
_RESOLVER = yaml.resolver.Resolver()  # the safe loader's implicit types: is a plain scalar a whole number?


class NumberTooLong(ValueError):
    """A whole number with more than :data:`MAX_DIGITS` digits, refused before it is converted."""


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise NumberTooLong(f"a number of {len(text.lstrip('-'))} digits (at most {MAX_DIGITS})")
    return int(text)


def loads_json(text: str) -> Any:
    """``json.loads`` whose whole numbers are bounded before conversion (:class:`NumberTooLong`)."""
    return json.loads(text, parse_int=_json_int)


def set_max_input_mb(mb: float | None) -> None:
    """The ``--max-input-mb`` flag of this process (``None``: the setting's value)."""
    global _max_input_mb
    _max_input_mb = mb


def max_input_mb() -> float:
    """The size cap of configuration files: ``--max-input-mb``, else ``LOADSTACK_MAX_INPUT_MB``, else 5."""
    if _max_input_mb is not None:
        return _max_input_mb
    from loadstack import settings

    return settings.current().max_input_mb


def overridden_max_input_mb() -> float | None:
    """The flag's value when one was given (a launcher hands it to the processes it starts)."""
    return _max_input_mb


def _problem(path: Path, message: str, line: int | None = None) -> ConfigError:
    return ConfigError([ConfigIssue(str(path), line, "", message)])


def read_text(path: Path, max_bytes: int | None = None, kind: str = "YAML or JSON") -> str:
    """A configuration file's text: size-capped, not binary, UTF-8 (problems name the byte offset).

    ``kind`` names what the file should be in messages (data files use this reader too)."""
    if max_bytes is None:
        max_bytes = int(max_input_mb() * 1024 * 1024)
    try:
        if not path.exists():
            raise _problem(path, "file not found")
        if path.is_dir():
            raise _problem(path, "is a directory, not a file")
        if not path.is_file():
            raise _problem(path, f"not a regular file (a device, pipe or socket); give a {kind} file")
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise _problem(path, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        size = max(len(raw), path.stat().st_size) / 1048576
        raise _problem(
            path,
            f"{size:.1f} MB is more than the {max_bytes / 1048576:g} MB limit for configuration files "
            "(raise it with --max-input-mb or LOADSTACK_MAX_INPUT_MB)",
        )
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _problem(path, "UTF-16 text; save the file as UTF-8")
    nul = raw.find(b"\0")
    if nul >= 0:
        raise _problem(path, f"binary data, not a {kind} text file (NUL byte at byte offset {nul})")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _problem(
            path,
            f"not UTF-8 text (byte offset {exc.start}: {raw[exc.start : exc.start + 4]!r}); "
            "save the file as UTF-8",
            line,
        ) from None


def _line(mark: Any) -> int | None:
    return mark.line + 1 if mark is not None else None


def _too_long_int(event: yaml.ScalarEvent) -> bool:
    """A plain scalar the loader would convert to a whole number of more than MAX_DIGITS digits."""
    if not event.implicit[0] or len(event.value) <= MAX_DIGITS:
        return False
    return _RESOLVER.resolve(yaml.ScalarNode, event.value, (True, False)) == _INT_TAG


def _check_events(text: str, path: Path) -> None:
    """Refuse nesting beyond MAX_DEPTH and alias expansion beyond ALIAS_BUDGET, before composing.

    A pass over libyaml's event stream (iterative, so any depth is safe to read): the composer and
    constructor recurse (libyaml's C composer crashes the process on deep nesting), and an alias
    bomb would only show its size once expanded.
    """
    Open = tuple[str | None, int, int, int]  # anchor, values so far, own depth, deepest below
    stack: list[Open] = []
    # Where the parser is, for a message naming the field: per open collection, whether it is a
    # mapping, whether its next node is a key, and the key or index of the node being read.
    where: list[list[Any]] = []

    def step(text: str | None) -> None:
        """The innermost collection moves on to its next node (``text``: the node's, when a scalar)."""
        if not where:
            return
        top = where[-1]
        if top[0] == "seq":
            top[2] += 1
            return
        if top[1]:  # a key: it names the value that follows
            top[2] = text
        top[1] = not top[1]

    def field() -> tuple[Any, ...]:
        return tuple(w[2] for w in where)

    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (values, height) once expanded
    added = 0
    literal = 0

    def value(count: int, height: int) -> None:
        if stack:
            anchor, values, depth, deepest = stack[-1]
            stack[-1] = (anchor, values + count, depth, max(deepest, depth + height))

    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.NodeEvent):
            literal += 1
            if literal > MAX_VALUES:
                raise _problem(
                    path,
                    f"more than {MAX_VALUES} values; split the file or move bulk data to a request file",
                    _line(event.start_mark),
                )
        if isinstance(event, yaml.NodeEvent):
            step(event.value if isinstance(event, yaml.ScalarEvent) else None)
        if isinstance(event, yaml.ScalarEvent) and _too_long_int(event):
            digits = sum(c.isdigit() for c in event.value)
            raise ConfigError(
                [
                    ConfigIssue(
                        str(path),
                        _line(event.start_mark),
                        field_path(field()),
                        f"a number of {digits} digits (at most {MAX_DIGITS})",
                    )
                ]
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth = len(stack) + 1
            if depth > MAX_DEPTH:
                raise _problem(path, f"nested deeper than {MAX_DEPTH} levels", _line(event.start_mark))
            stack.append((event.anchor, 1, depth, depth))
            where.append(
                ["map", True, None] if isinstance(event, yaml.MappingStartEvent) else ["seq", None, -1]
            )
        elif isinstance(event, yaml.CollectionEndEvent):
            if where:
                where.pop()
            anchor, values, depth, deepest = stack.pop()
            if anchor is not None:
                sizes[anchor] = (values, deepest - depth + 1)
            value(values, deepest - depth + 1)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                sizes[event.anchor] = (1, 0)
            value(1, 0)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:
                raise _problem(
                    path,
                    f"alias *{event.anchor} refers to its own anchor (a structure that contains itself)",
                    _line(event.start_mark),
                )
            count, height = sizes[event.anchor]
            added += count
            if added > ALIAS_BUDGET:
                raise _problem(
                    path,
                    f"YAML aliases expand to more than {ALIAS_BUDGET} values (at *{event.anchor}); "
                    "write the values out or share less",
                    _line(event.start_mark),
                )
            if len(stack) + height > MAX_DEPTH:
                raise _problem(
                    path,
                    f"nested deeper than {MAX_DEPTH} levels once *{event.anchor} is expanded",
                    _line(event.start_mark),
                )
            value(count, height)


def _check_duplicates(root: yaml.Node, path: Path) -> None:
    """A key given twice in one mapping is an error naming both lines (YAML would keep the last)."""
    visited: set[int] = set()
    stack = [root]
    issues: list[ConfigIssue] = []
    while stack:
        node = stack.pop()
        if id(node) in visited:  # a node shared through an alias is checked once
            continue
        visited.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack += node.value
        if not isinstance(node, yaml.MappingNode):
            continue
        first_lines: dict[tuple[str, Any], int] = {}
        for key_node, value_node in node.value:
            stack += [key_node, value_node]
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            line = key_node.start_mark.line + 1
            key = (key_node.tag, key_node.value)
            if key in first_lines:
                issues.append(
                    ConfigIssue(
                        str(path),
                        line,
                        str(key_node.value),
                        f"duplicate key (first at line {first_lines[key]}); give each key once",
                    )
                )
            else:
                first_lines[key] = line
    if issues:
        raise ConfigError(sorted(issues, key=lambda i: i.line or 0))


def _check_depth(data: Any, path: Path) -> None:
    """Nesting of already parsed data (JSON) within MAX_DEPTH, without recursing."""
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _problem(path, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader (libyaml's when available): plain data, no Python objects."""


def _yaml(text: str, path: Path) -> tuple[Any, yaml.Node | None]:
    _check_events(text, path)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_duplicates(node, path)
        return loader.construct_document(node), node
    finally:
        loader.dispose()


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateJsonKey(key)
        out[key] = value
    return out


class _DuplicateJsonKey(ValueError):
    pass


def read_document(path: Path, max_bytes: int | None = None) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML or JSON file into plain data plus the YAML node tree (for line numbers).

    Bounded: the file's size (:func:`max_input_mb`), its nesting depth and what its aliases expand
    to.  A key given twice is an error naming both lines, like bytes that are not UTF-8 text.
    """
    text = read_text(path, max_bytes)
    try:
        if path.suffix == ".json":
            node = _json_node(text, path)
            try:
                data = json.loads(text, object_pairs_hook=_json_pairs, parse_int=_json_int)
            except json.JSONDecodeError as exc:
                raise _problem(path, f"invalid JSON: {exc.msg} (column {exc.colno})", exc.lineno) from None
            except _DuplicateJsonKey as exc:
                raise _problem(path, f"{exc.args[0]}: duplicate key; give each key once") from None
            except NumberTooLong as exc:
                raise _problem(path, str(exc)) from None
            _check_depth(data, path)
            return data, node
        return _yaml(text, path)
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or str(exc)
        raise _problem(path, f"invalid YAML: {problem}", _line(exc.problem_mark)) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (no mark)
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        character = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        raise _problem(path, f"invalid YAML: {character}: {exc.reason}", line) from None
    except yaml.YAMLError as exc:
        raise _problem(path, f"invalid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise _problem(path, f"nested deeper than {MAX_DEPTH} levels") from None


def _json_node(text: str, path: Path) -> yaml.Node | None:
    """The YAML node tree of a JSON text (JSON is nearly YAML), for line numbers; None when it is not."""
    try:
        _check_events(text, path)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError:
        return None
    if node is not None:
        _check_duplicates(node, path)
    return node


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
