"""Secret masking for everything loadstack prints or writes.

Two layers: patterns catch secrets we have never seen (a password inside a URL,
an ``Authorization`` header, a JWT), and a :class:`Masker` built from the
environment also replaces the exact values of secret-looking variables, so a
token that leaks into an exception message is still hidden.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

MASK = "***"

# How much of one value (a line, a request name, a failure message, one CSV cell) is scanned.
# Every pattern below is linear in what it scans; past this many characters a value is cut at the
# last whitespace before the limit and the rest is replaced by a marker that says how much was
# left out, so a value too long to scan is never passed on unscanned.
MAX_SCAN_CHARS = 1 << 20

# Environment variable names whose values are secrets in full.
SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTHORIZATION|COOKIE|CLAIMS|SESSION)",
    re.I,
)
# Names whose values are URLs/DSNs that may carry a password.
URL_NAME = re.compile(r"(DSN|URL|URI|HOST)$", re.I)

# No pattern here backtracks more than once over what it scanned: the scheme may only start where a
# run of scheme characters starts (a lookbehind) and is at most 32 characters long, spaces are
# bounded, and value runs are possessive.  A quadratic pattern let one 40,000-character token stall
# a command (issue 27, finding 12).
_URL_PASSWORD = re.compile(
    r"(?<![a-z0-9+.\-])(?P<scheme>[a-z][a-z0-9+.\-]{0,31}://)(?P<user>[^:/@\s]*+):(?P<pw>[^/\s]*)@", re.I
)
_AUTH_HEADER = re.compile(
    r"(?P<k>authorization['\"]?[ \t]{0,8}[:=][ \t]{0,8}['\"]?)(?P<scheme>bearer|basic|token)?[ \t]{0,8}"
    r"[^\s'\",}]++",
    re.I,
)
_JWT = re.compile(
    r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+(?![A-Za-z0-9_-])"
)

# Keys whose value is a secret.  `password`-like keys are libpq's too (`password=`, `sslpassword=`),
# whose unquoted values run to the next whitespace and may hold , \ ' " & } (a backslash escapes the
# next character), so their values run that far; other keys live in query strings and forms, where
# a value ends at & # , ; and the like.  Before `=` a key may end a longer name (`DB_PASSWORD=`,
# `refresh_token=`); before `:` it is a word of its own, so `env.LOADSTACK_JWT_SECRET: required`
# stays readable.  `key`, `sig` and `session` only count before `=` (``?key=…``): as `key: …`
# they are ordinary words in YAML and log lines.
_DSN_KEYS = r"(?:ssl)?password|passwd|pwd|passphrase"
_OTHER_KEYS = r"(?:(?:access|refresh|id|auth)_)?token|(?:client_)?secret|api[_-]?key|apikey|private[_-]?key"
_EQUALS_ONLY_KEYS = r"key|sig|signature|session(?:_?id)?|credentials?"
_END = r"(?:\\?['\"])?[ \t]{0,8}"  # the key's end (and a JSON key's quote)
_KEY = (
    rf"(?P<k>(?<![A-Za-z0-9])(?:(?P<libpq>(?:{_DSN_KEYS})(?![A-Za-z0-9]){_END}=)"
    rf"|(?:{_OTHER_KEYS}|{_EQUALS_ONLY_KEYS})(?![A-Za-z0-9]){_END}="
    rf"|(?<![A-Za-z0-9_])(?:{_DSN_KEYS}|{_OTHER_KEYS})(?![A-Za-z0-9_]){_END}(?P<colon>:))[ \t]{{0,8}})"
)
# A quote inside an unquoted value is part of it unless it ends the value: then it is a string's
# closing quote (JSON, a repr) and stays, so masking a line of JSON never breaks it.  The same
# holds for an escaped quote (JSON inside a JSON string); a libpq value's other escapes are pairs.
_QUOTE_IN_VALUE = r"['\"](?![\s,;:}\])]|$)"
# The lookahead names every key's first letter: the engine skips other positions fast, which
# makes the pattern about 3 times cheaper per MB (bench/masker.py).
_KV_SECRET = re.compile(
    "(?=[pPsStTaArRiIcCkK])"
    + _KEY
    + r"(?![{\[])(?:(?P<q>['\"])(?:[^'\"\\]|\\.|(?!(?P=q))['\"])*+(?P=q)"  # quoted: the quotes stay
    r"|\\(?P<eq>['\"])(?:[^'\"\\]|\\[^'\"]|(?!(?P=eq))['\"])*+\\(?P=eq)"  # quoted inside a JSON string
    r"|(?(libpq)(?:\\[^'\"]|\\" + _QUOTE_IN_VALUE + "|" + _QUOTE_IN_VALUE + r"|[^\s'\"\\])++"  # to whitespace
    r"|(?:" + _QUOTE_IN_VALUE + r"|[^\s'\"\\&#,;{}\[\]()<>])++))",
    re.I,
)
_DSN_SECRET_KEYS = ("password", "sslpassword")
# A mapping key whose scalar value is a secret: the keys the patterns read before `:` (`"password":
# "x"` in a line of JSON).  A structure masked value by value (:meth:`Masker.mask_obj`) would
# otherwise lose what its key says about the value beside it.
_SECRET_KEY = re.compile(rf"(?:{_DSN_KEYS}|{_OTHER_KEYS})", re.I)

# Names that match SECRET_NAME but hold settings, not secrets (LOADSTACK_JWT_KEY_FILE). A client id is
# not a secret either: masking the default client id `loadstack` would garble every path.
_NOT_SECRET = (
    "_MODE",
    "_FILE",
    "_PATH",
    "_ALGORITHM",
    "_TTL",
    "_PROBE",
    "_ISSUER",
    "_SUBJECT",
    "_CLIENT_AUTH",
    "_CLIENT_ID",
)

# Short values would mask ordinary words; real secrets are longer.
_MIN_LITERAL = 4


def is_secret_name(name: str) -> bool:
    """Whether a variable or field of this name holds a secret (so its value is never shown)."""
    upper = name.upper()
    return bool(SECRET_NAME.search(upper)) and not upper.endswith(_NOT_SECRET)


def mask_url(url: str) -> str:
    """Replace the password of ``scheme://user:password@host`` with ``***`` (the rest by :func:`mask_patterns`)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        password = None
    if password is not None:
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        url = urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{netloc}"))
    return mask_patterns(url)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Control characters (terminal escape sequences included) as visible ``\\xNN`` escapes."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def parse_dsn(dsn: str) -> dict[str, str] | None:
    """A PostgreSQL DSN (keyword or URI form) as libpq itself reads it, or None when it is not one.

    libpq's keyword syntax is richer than any pattern: an unquoted value may hold , \\ ' " & }, a
    quoted one escaped quotes.  Asking libpq is the only way to know which characters are the password.
    """
    if "=" not in dsn and not dsn.startswith(("postgres://", "postgresql://")):
        return None
    try:
        from psycopg2.extensions import parse_dsn as libpq_parse
    except ImportError:  # pragma: no cover - psycopg2 is a dependency
        return None
    try:
        return dict(libpq_parse(dsn))
    except Exception:  # psycopg2.ProgrammingError: not a DSN libpq accepts
        return None


def dsn_secrets(value: str) -> set[str]:
    """The passwords a URL or DSN carries: its user-info password, and ``password``/``sslpassword``
    wherever libpq or a URL query (Redis' ``?password=``) would find them."""
    found: set[str] = set()
    if "://" in value:
        try:
            parts = urlsplit(value)
            if parts.password:
                found |= {parts.password, unquote(parts.password)}
            for key, values in parse_qs(parts.query).items():
                if key.lower() in _DSN_SECRET_KEYS:
                    found.update(values)
        except ValueError:
            pass
    parsed = parse_dsn(value)
    if parsed:
        found.update(parsed[k] for k in _DSN_SECRET_KEYS if parsed.get(k))
    return {v for v in found if v}


_QUOTED_DSN_MASK = re.compile(r"(?<![A-Za-z0-9_])((?:ssl)?password[ \t]{0,8}=[ \t]{0,8})'\*\*\*'")


def mask_dsn(dsn: str) -> str:
    """A URL or a libpq keyword DSN (``host=h password=p``) with its passwords masked.

    A keyword DSN is checked with libpq's own parser: when the patterns left any of a
    ``password``/``sslpassword`` behind (a quoting or escaping form they do not know), the DSN is
    written back from what libpq read, with those values masked.
    """
    masked = mask_url(dsn)
    if "://" in dsn:
        return masked
    parsed = parse_dsn(masked)
    if parsed is None or all(parsed.get(k) in (None, MASK) for k in _DSN_SECRET_KEYS):
        return _QUOTED_DSN_MASK.sub(r"\1***", masked)  # `password='***'`: *** needs no quotes here
    from psycopg2.extensions import make_dsn

    read = parse_dsn(dsn) or parsed
    return mask_patterns(make_dsn(**{k: MASK if k in _DSN_SECRET_KEYS else v for k, v in read.items()}))


_ESCAPED_QUOTE = re.compile(r"\\['\"]")


def _kv_masked(m: re.Match[str]) -> str:
    if m["q"]:
        return f"{m['k']}{m['q']}{MASK}{m['q']}"
    if m["eq"]:
        return f"{m['k']}\\{m['eq']}{MASK}\\{m['eq']}"
    if not m["colon"]:
        return f"{m['k']}{MASK}"
    # `password: abc` (YAML, a repr, JSON with a number) becomes `password: "***"`: a bare *** would
    # be a YAML alias and not JSON.  Inside a JSON string (JSON held in JSON: `{\"password\": \"x\"}`)
    # the quotes are escaped like the key's.
    quote = '\\"' if _ESCAPED_QUOTE.search(m["k"]) else '"'
    return f"{m['k']}{quote}{MASK}{quote}"


def _is_secret_scalar(value: Any) -> bool:
    """A value a secret key's value can be: a non-empty string or a number (not a flag, not a structure)."""
    return (isinstance(value, str) and value != "") or (
        isinstance(value, int | float) and not isinstance(value, bool)
    )


def _bounded(text: str) -> tuple[str, str]:
    """``text`` cut to what is scanned, and what replaces the rest (empty when nothing was cut)."""
    if len(text) <= MAX_SCAN_CHARS:
        return text, ""
    head = text[:MAX_SCAN_CHARS]
    # The token the limit falls into is not shown either: half a secret is still a secret.
    token = re.match(r"\S*", head[::-1])
    head = head[: len(head) - (token.end() if token else 0)]
    return (
        head,
        f"{MASK}[{len(text) - len(head)} more characters not shown: past the scan limit of the masker]",
    )


def _patterns(text: str) -> str:
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m['k']}{(m['scheme'] + ' ') if m['scheme'] else ''}{MASK}", text)
    text = _KV_SECRET.sub(_kv_masked, text)
    return _JWT.sub(MASK, text)


def mask_patterns(text: str) -> str:
    """Mask secrets recognisable by shape alone (in time linear in ``text``, see ``MAX_SCAN_CHARS``)."""
    head, rest = _bounded(text)
    return _patterns(head) + rest


def _dsn_user(value: str) -> str | None:
    try:
        if "://" in value:
            return urlsplit(value).username
    except ValueError:
        return None
    return (parse_dsn(value) or {}).get("user")


def secret_values_from_env(environ: Mapping[str, str]) -> set[str]:
    """Literal secret values found in an environment: secret variables whole, and the passwords of
    URL and DSN variables (libpq keyword DSNs read by libpq, so every quoting form is found)."""
    values: set[str] = set()
    for name, value in environ.items():
        if not value:
            continue
        if SECRET_NAME.search(name) and not name.endswith((*_NOT_SECRET, "_URL")):
            values.add(value)
        if "://" in value or URL_NAME.search(name) or "password" in value.lower():
            # user == password is a local dev default (e.g. loadstack:loadstack); masking that word
            # everywhere would garble every log line, and inside URLs the pattern masks it anyway.
            values |= dsn_secrets(value) - {_dsn_user(value)}
    return {v for v in values if len(v) >= _MIN_LITERAL}


class Masker:
    """Masks known secret values and secret-shaped text.

    Built once per process from the environment (plus any extra values, such
    as a token fetched at run time) and applied to every line and file.

    It masks values, never formats: a structured output is masked by its parsed values and
    written back by its own writer (:meth:`mask_obj`, :meth:`mask_document`), and nothing it
    puts in place of a secret can end a string, a cell, an element or a script.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = {s for s in secrets if s and len(s) >= _MIN_LITERAL}
        self._literal: re.Pattern[str] | None = None
        self._compile()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Masker:
        if environ is None:
            from loadstack.settings import raw_environment

            environ = raw_environment()
        return cls(secret_values_from_env(environ))

    def add(self, *secrets: str) -> None:
        new = {s for s in secrets if s and len(s) >= _MIN_LITERAL} - self._secrets
        if new:
            self._secrets |= new
            self._compile()

    def _compile(self) -> None:
        if self._secrets:
            # Longest first so a secret containing another is masked whole.
            alternatives = sorted(self._secrets, key=len, reverse=True)
            self._literal = re.compile("|".join(re.escape(s) for s in alternatives))
        else:
            self._literal = None

    def __call__(self, text: str) -> str:
        """One value (a line, a name, a message) with its secrets masked; linear in its length,
        and never more than ``MAX_SCAN_CHARS`` of it is passed on (see :func:`_bounded`)."""
        text, rest = _bounded(text)
        if self._literal is not None:
            text = self._literal.sub(MASK, text)
        return _patterns(text) + rest

    def mask_obj(self, obj: Any) -> Any:
        """Mask every string inside a JSON-like structure, and the whole scalar value of a secret
        key (``{"password": "x"}``, ``{"token": 1234}``), as the patterns do in a line of JSON."""
        if isinstance(obj, str):
            return self(obj)
        if isinstance(obj, Mapping):
            return {
                (self(k) if isinstance(k, str) else k): (
                    MASK
                    if isinstance(k, str) and _is_secret_scalar(v) and _SECRET_KEY.fullmatch(k)
                    else self.mask_obj(v)
                )
                for k, v in obj.items()
            }
        if isinstance(obj, list | tuple):
            return [self.mask_obj(v) for v in obj]
        return obj

    def mask_document(self, text: str, kind: str) -> str:
        """A whole document with its values masked and its format kept: ``json``, ``jsonl``,
        ``csv``, ``xml``/``svg``/``html`` (text and attribute values; never a script's or a style's
        code), anything else line by line as text.  The result parses wherever the input did."""
        kind = kind.lower().lstrip(".")
        if kind == "json":
            return _mask_json_text(self, text)
        if kind == "jsonl":
            return "".join(_mask_json_text(self, line) for line in text.splitlines(keepends=True))
        if kind == "csv":
            return _mask_csv(self, text)
        if kind in ("html", "htm", "xml", "svg"):
            return _mask_markup(self, text)
        return "".join(self(line) for line in text.splitlines(keepends=True))

    def mask_file(self, path: Path) -> None:
        """Rewrite a file another program wrote (Locust's report.html and CSVs) with its values
        masked, in its own format (:meth:`mask_document`, chosen by the file's suffix)."""
        try:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            return
        masked = self.mask_document(text, path.suffix)
        if masked != text:
            path.write_text(masked, encoding="utf-8", errors="surrogateescape")

    def mask_env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """An environment fit for writing to disk: secret variables fully masked."""
        out: dict[str, str] = {}
        for name, value in environ.items():
            if (
                SECRET_NAME.search(name)
                and not URL_NAME.search(name)
                and not name.endswith(_NOT_SECRET)
                and value
            ):
                out[name] = MASK
            elif URL_NAME.search(name) and value:
                out[name] = self(mask_dsn(value))
            else:
                out[name] = self(value)
        return out


# -- documents: parsed, masked by value, written back by their own writer --------------------------


def _mask_json_text(masker: Masker, text: str) -> str:
    body = text.strip()
    if not body:
        return text
    try:
        data = json.loads(body)
    except ValueError:
        return "".join(masker(line) for line in text.splitlines(keepends=True))
    masked = masker.mask_obj(data)
    if masked == data:
        return text
    indent = 2 if "\n" in body else None
    separators = None if indent or ", " in body or ": " in body else (",", ":")
    out = json.dumps(masked, indent=indent, separators=separators, ensure_ascii=False)
    return text[: len(text) - len(text.lstrip())] + out + text[len(text.rstrip()) :]


def _mask_csv(masker: Masker, text: str) -> str:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    masked = [[masker(cell) for cell in row] for row in rows]
    if masked == rows:
        return text
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n" if "\r\n" in text else "\n").writerows(masked)
    return out.getvalue()


# Markup, token by token: comments, CDATA, declarations and processing instructions, tags (whose
# attribute values are masked) and the text between them.  No token but a comment or CDATA crosses
# a `<` (escaped as `&lt;` in any attribute value loadstack or Locust writes), and an attribute name
# starts only after a space or a quote: a failed match then costs what it scanned up to the next
# `<` or space, so a document is tokenized in linear time (`x<x<x<…` or `<a bbbb…>` were quadratic).
# `<script>`/`<style>` content is code: only a JSON data island in it
# (`<script type="application/json">`, `window.x = {...}`) is data.
_MARKUP = re.compile(
    r"<!--.*?(?:-->|\Z)|<!\[CDATA\[.*?(?:\]\]>|\Z)|<[!?][^<>]*+>"
    r"|<(?P<close>/?)(?P<name>[A-Za-z][^\s/<>]*+)(?P<attrs>(?:[^<>\"']++|\"[^<\"]*+\"|'[^<']*+')*+)>",
    re.S,
)
_ATTR = re.compile(
    r"(?P<lead>(?<![^\s\"'])[^\s=]++[ \t\r\n]*+=[ \t\r\n]*+)"
    r"(?:\"(?P<d>[^\"]*+)\"|'(?P<s>[^']*+)'|(?P<u>[^\s\"'>]++))"
)
_ASSIGNED_JSON = re.compile(r"\s*+(?:window\.|var\s++|let\s++|const\s++)?[A-Za-z_$][\w$.]*+\s*+=\s*+")
_HTML_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027"})


def _mask_markup_text(masker: Masker, raw: str, *, quote: bool) -> str:
    if not raw or raw.isspace():
        return raw
    value = html.unescape(raw)
    masked = masker(value)
    return raw if masked == value else html.escape(masked, quote=quote)


def _mask_tag(masker: Masker, tag: str, attrs: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m["d"] is not None:
            return f'{m["lead"]}"{_mask_markup_text(masker, m["d"], quote=True)}"'
        if m["s"] is not None:
            return f"{m['lead']}'{_mask_markup_text(masker, m['s'], quote=True)}'"
        return m["lead"] + _mask_markup_text(masker, m["u"], quote=True)

    masked = _ATTR.sub(one, attrs)
    return tag if masked == attrs else tag.replace(attrs, masked, 1)


def _mask_script(masker: Masker, code: str, attrs: str) -> str:
    """A script's code unchanged, except the JSON data it holds (``type="application/json"``) or
    assigns (``window.templateArgs = {...}``, statement after statement), masked as data."""
    if re.search(r"type\s*=\s*['\"]?application/(?:ld\+)?json", attrs, re.I):
        return _mask_json_text(masker, code)
    out: list[str] = []
    pos = 0
    while (assigned := _ASSIGNED_JSON.match(code, pos)) is not None:
        try:
            data, end = json.JSONDecoder().raw_decode(code, assigned.end())
        except ValueError:
            break
        masked = masker.mask_obj(data)
        out.append(code[pos : assigned.end()])
        # As Jinja's `tojson` writes it: nothing in the data can close the script or start markup.
        encoded = json.dumps(masked, ensure_ascii=False).translate(_HTML_JSON_ESCAPES)
        out.append(code[assigned.end() : end] if masked == data else encoded)
        pos = end + (code[end : end + 1] == ";")
    return "".join(out) + code[pos:]


def _mask_markup(masker: Masker, text: str) -> str:
    out: list[str] = []
    pos = 0
    raw_until: re.Pattern[str] | None = None
    script_attrs = ""
    for m in _MARKUP.finditer(text):
        if raw_until is not None:
            if not (m["close"] and raw_until.fullmatch(m["name"] or "")):
                continue  # inside <script>/<style>: code, up to its closing tag
            code = text[pos : m.start()]
            out.append(_mask_script(masker, code, script_attrs) if raw_until.pattern == "script" else code)
            raw_until = None
            pos = m.start()
        out.append(_mask_markup_text(masker, text[pos : m.start()], quote=False))
        token = m.group()
        if m["name"] is not None:
            token = _mask_tag(masker, token, m["attrs"])
            name = m["name"].lower()
            if not m["close"] and name in ("script", "style") and not token.endswith("/>"):
                raw_until = re.compile(name, re.I)
                script_attrs = m["attrs"]
        elif token.startswith(("<!--", "<![CDATA[")):
            token = masker(token)
        out.append(token)
        pos = m.end()
    rest = text[pos:]
    if raw_until is not None:
        out.append(_mask_script(masker, rest, script_attrs) if raw_until.pattern == "script" else rest)
    else:
        out.append(_mask_markup_text(masker, rest, quote=False))
    return "".join(out)


_process: Masker | None = None


def current() -> Masker:
    """This process's masker: its environment's secrets, plus every one learned since (:meth:`Masker.add`).

    Everything loadstack prints or writes passes it (the console, logs, results, reports, metrics
    labels, generated files), so a secret made up at run time is masked everywhere once added.
    """
    global _process
    if _process is None:
        _process = Masker.from_env()
    return _process


class MaskingStream:
    """A text stream that masks each complete line before it reaches the wrapped one.

    Installed as ``sys.stdout``/``sys.stderr`` of loadstack's CLI and of every Locust process
    that loads loadstack (:func:`mask_standard_streams`), so nothing printed escapes the masker,
    whoever prints it.  Lines are buffered so a secret split across two writes is still whole.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            complete, self._pending = self._pending.rsplit("\n", 1)
            self._stream.write(current()(complete) + "\n")
        return len(text)

    def flush(self) -> None:
        if getattr(self._stream, "closed", False):
            return  # at exit, after a host (pytest, an embedding program) closed the stream it lent us
        if self._pending:
            self._stream.write(current()(self._pending))
            self._pending = ""
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def write_verbatim(text: str) -> None:
    """Write ``text`` to standard output unmasked: for a document whose bytes must stay exact.

    ``loadstack k8s render`` prints manifests that ``kubectl apply`` reads; they embed the
    locustfiles, where the masker took ``self.password = uuid.uuid4().hex`` for a secret and
    wrote ``***``, and the pods then failed on a SyntaxError.  The caller guarantees the document
    holds no secret (render references Secrets, never inlines them, and refuses credentials in
    its flags).
    """
    import sys

    stream = sys.stdout
    if isinstance(stream, MaskingStream):
        stream.flush()  # what was printed before stays in order, masked
        stream = stream._stream
    stream.write(text)
    stream.flush()


def mask_standard_streams() -> None:
    """Route ``sys.stdout`` and ``sys.stderr`` through the masker (idempotent)."""
    import atexit
    import sys

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, MaskingStream):
            wrapped = MaskingStream(stream)
            setattr(sys, name, wrapped)
            atexit.register(wrapped.flush)
