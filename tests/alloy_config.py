"""A strict reader for the subset of Grafana Alloy's configuration syntax that infra/alloy uses.

Alloy cannot run here (no Debian package, no registry), so the tests compare its file with the
Prometheus config they do run. Regular expressions over the file would pass a block they cannot
see into; this parser reads the whole file and fails on anything it does not understand, so a new
block or attribute is a test failure until the comparison learns about it.

Syntax (https://grafana.com/docs/alloy/latest/get-started/configuration-syntax/syntax/):
``//`` and ``/* */`` comments; blocks ``name.part "label" { … }``; attributes ``name = value``;
values are strings (double-quoted, Go escapes), numbers, ``true``/``false``/``null``, lists
``[a, b]``, objects ``{ key = value, "key" = value }``, references ``a.b.c`` and calls
``f.g(args)``. A trailing comma is allowed in lists and objects; each attribute or block ends its
line.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any

TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r]+)
  | (?P<newline>\n)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}\[\](),.=])
    """,
    re.X | re.S,
)


class AlloySyntaxError(ValueError):
    """The file is not in the subset of Alloy's syntax this reader accepts."""


@dataclass(frozen=True)
class Ref:
    """A reference to another component's export, such as ``prometheus.remote_write.default.receiver``."""

    path: str


@dataclass(frozen=True)
class Call:
    """A standard-library call, such as ``sys.env("LOADSTACK_REMOTE_WRITE_URL")``."""

    name: str
    args: tuple[Any, ...]


@dataclass
class Block:
    """A block: its name (``prometheus.scrape``), label (``"locust"``), attributes and inner blocks."""

    name: str
    label: str | None
    attributes: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos, line = [], 0, 1
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match:
            raise AlloySyntaxError(f"line {line}: unexpected {text[pos : pos + 20]!r}")
        kind, value = match.lastgroup or "", match[0]
        if kind == "newline" or (kind == "comment" and "\n" in value):
            out.append(("newline", "\n", line))
        elif kind not in ("space", "comment"):
            out.append((kind, value, line))
        line += value.count("\n")
        pos = match.end()
    out.append(("eof", "", line))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, skip_newlines: bool = False) -> tuple[str, str, int]:
        j = self.i
        while skip_newlines and self.toks[j][0] == "newline":
            j += 1
        return self.toks[j]

    def next(self) -> tuple[str, str, int]:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def newlines(self) -> None:
        while self.peek()[0] == "newline":
            self.i += 1

    def expect(self, value: str) -> None:
        if value in ("}", "]", ")"):
            self.newlines()
        kind, got, line = self.next()
        if got != value or kind not in ("punct", "ident"):
            raise AlloySyntaxError(f"line {line}: expected {value!r}, found {got!r}")

    def dotted(self) -> str:
        kind, value, line = self.next()
        if kind != "ident":
            raise AlloySyntaxError(f"line {line}: expected a name, found {value!r}")
        parts = [value]
        while self.peek()[1] == ".":
            self.next()
            kind, value, line = self.next()
            if kind != "ident":
                raise AlloySyntaxError(f"line {line}: expected a name after '.', found {value!r}")
            parts.append(value)
        return ".".join(parts)

    def body(self, end: str) -> tuple[dict[str, Any], list[Block]]:
        attributes: dict[str, Any] = {}
        blocks: list[Block] = []
        while True:
            self.newlines()
            kind, value, line = self.peek()
            if value == end and kind in ("punct", "eof"):
                return attributes, blocks
            name = self.dotted()
            kind, value, line = self.peek()
            if value == "=":
                if "." in name:
                    raise AlloySyntaxError(f"line {line}: attribute {name!r} cannot be dotted")
                if name in attributes:
                    raise AlloySyntaxError(f"line {line}: {name} is set twice")
                self.next()
                attributes[name] = self.value()
            else:
                label = None
                if kind == "string":
                    label = json.loads(self.next()[1])
                self.expect("{")
                inner_attributes, inner_blocks = self.body("}")
                self.expect("}")
                blocks.append(Block(name, label, inner_attributes, inner_blocks))
            kind, value, line = self.peek()
            if kind not in ("newline", "eof") and value != end:
                raise AlloySyntaxError(f"line {line}: {value!r} after {name}: one statement per line")

    def value(self) -> Any:
        kind, value, line = self.peek(skip_newlines=True)
        self.newlines()
        if kind == "string":
            self.next()
            return json.loads(value)
        if kind == "number":
            self.next()
            return float(value) if "." in value else int(value)
        if value == "[":
            self.next()
            items = []
            while self.peek(skip_newlines=True)[1] != "]":
                items.append(self.value())
                if self.peek(skip_newlines=True)[1] == ",":
                    self.newlines()
                    self.next()
                elif self.peek(skip_newlines=True)[1] != "]":
                    raise AlloySyntaxError(f"line {self.peek()[2]}: expected ',' or ']' in a list")
            self.expect("]")
            return items
        if value == "{":
            self.next()
            obj: dict[str, Any] = {}
            while self.peek(skip_newlines=True)[1] != "}":
                self.newlines()
                kind, key, line = self.next()
                if kind == "string":
                    key = json.loads(key)
                elif kind != "ident":
                    raise AlloySyntaxError(f"line {line}: an object key, not {key!r}")
                if key in obj:
                    raise AlloySyntaxError(f"line {line}: key {key!r} is set twice")
                self.expect("=")
                obj[key] = self.value()
                if self.peek(skip_newlines=True)[1] == ",":
                    self.newlines()
                    self.next()
                elif self.peek(skip_newlines=True)[1] != "}":
                    raise AlloySyntaxError(f"line {self.peek()[2]}: expected ',' or '}}' in an object")
            self.expect("}")
            return obj
        if kind == "ident":
            if value in ("true", "false", "null"):
                self.next()
                return {"true": True, "false": False, "null": None}[value]
            name = self.dotted()
            if self.peek()[1] == "(":
                self.next()
                args = []
                while self.peek(skip_newlines=True)[1] != ")":
                    args.append(self.value())
                    if self.peek(skip_newlines=True)[1] == ",":
                        self.newlines()
                        self.next()
                self.newlines()
                self.expect(")")
                return Call(name, tuple(args))
            return Ref(name)
        raise AlloySyntaxError(f"line {line}: expected a value, found {value!r}")


def parse(text: str) -> list[Block]:
    """The file's top-level blocks; :class:`AlloySyntaxError` for anything outside the subset."""
    parser = _Parser(text)
    attributes, blocks = parser.body("")
    if attributes:
        raise AlloySyntaxError(f"attributes outside a block: {sorted(attributes)}")
    return blocks


# --- what Alloy sends: one Prometheus remote-write request ---------------------------------

# Prometheus's remote-write receiver (--web.enable-remote-write-receiver) listens here.
REMOTE_WRITE_PATH = "/api/v1/write"


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _uvarint(number << 3 | 2) + _uvarint(len(payload)) + payload


def snappy_literal(data: bytes) -> bytes:
    """``data`` in Snappy's block format using literals only: valid Snappy, no compressor needed."""
    out = bytearray(_uvarint(len(data)))
    for i in range(0, len(data), 65_536):
        chunk = data[i : i + 65_536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + n.to_bytes(2, "little")
        out += chunk
    return bytes(out)


def remote_write_body(labels: dict[str, str], value: float, timestamp_ms: int) -> bytes:
    """A remote-write 1.0 request (``prometheus.WriteRequest``, Snappy-framed) holding one sample.

    Wire format: https://prometheus.io/docs/specs/prw/remote_write_spec/ . Labels are sorted by
    name, as the specification requires.
    """
    label_bytes = b"".join(
        _field(1, _field(1, k.encode()) + _field(2, v.encode())) for k, v in sorted(labels.items())
    )
    sample = b"\x09" + struct.pack("<d", value) + b"\x10" + _uvarint(timestamp_ms)
    series = label_bytes + _field(2, sample)
    return snappy_literal(_field(1, series))
