"""Reading HAR files as browsers and tools save them, and keeping the calls a replay needs.

Chrome and Firefox both write HAR 1.2 (older Firefox wrote 1.1) but differ in
details this module evens out: Chrome marks each entry with ``_resourceType``
and may include HTTP/2 pseudo-headers (``:authority``); Firefox has neither,
writes local-time timestamps with an offset, lists form fields in
``postData.params`` and may base64-encode response bodies.  Hand-written and
tool-written files are accepted as the converters users come from accept them:
a missing ``log.version`` reads as 1.2, entries without a response are kept as
requests.  Either way the result is a time-ordered list of :class:`Recorded`
calls plus a count of what was dropped and why.

Two things a browser does on its own are folded in, because the replay's HTTP
client does them too: following redirects (the ``GET`` of a ``Location`` is
not a call of its own; the call expects the final status) and keeping cookies
(pages whose ``Set-Cookie`` or hidden form fields later calls need are kept,
even though pages are otherwise dropped).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import fnmatch
import json
import re
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any

from loadstack.importers import ImportProblem, har_schema
from loadstack.importers.bodies import Body, parse_json, request_body
from loadstack.importers.har_schema import Entry, Har, NameValue
from loadstack.replay import form_values

SUPPORTED_VERSIONS = ("1.1", "1.2")
DEFAULT_VERSION = "1.2"
MAX_INPUT_BYTES = 64 * 1024 * 1024
MAX_CALLS = 5000
STATIC_TYPES = {
    "document",
    "stylesheet",
    "script",
    "image",
    "font",
    "media",
    "manifest",
    "texttrack",
    "ping",
    "websocket",
    "eventsource",
    "other",
}
API_TYPES = {"xhr", "fetch"}
STATIC_EXTENSIONS = (
    ".js", ".mjs", ".css", ".map", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".svg", ".ico",
    ".woff", ".woff2", ".ttf", ".otf", ".eot", ".mp4", ".webm", ".mp3", ".wasm", ".html", ".htm",
)  # fmt: skip
STATIC_MIME_PREFIXES = ("image/", "font/", "audio/", "video/", "text/css", "text/html", "text/javascript")
STATIC_MIME_PARTS = ("javascript", "font-", "ecmascript")
# Third-party collectors a load test must never replay (suffix match on the host).
ANALYTICS_HOSTS = (
    "google-analytics.com", "analytics.google.com", "googletagmanager.com", "doubleclick.net",
    "googlesyndication.com", "segment.io", "segment.com", "hotjar.com", "hotjar.io", "sentry.io",
    "nr-data.net", "newrelic.com", "browser-intake-datadoghq.com", "datadoghq.eu", "mixpanel.com",
    "amplitude.com", "facebook.net", "facebook.com", "clarity.ms", "plausible.io", "matomo.cloud",
    "fullstory.com", "intercom.io", "cloudflareinsights.com",
)  # fmt: skip
# Request headers the browser or the transport sets; a replay sets its own.
DROPPED_HEADERS = {
    "host", "connection", "content-length", "accept-encoding", "accept-language", "user-agent", "cookie",
    "origin", "referer", "pragma", "cache-control", "dnt", "upgrade-insecure-requests", "priority",
    "te", "keep-alive", "if-none-match", "if-modified-since", "x-loadstack-run-id", "content-type",
    "accept", "transfer-encoding", "upgrade", "expect", "trailer", "proxy-connection",
}  # fmt: skip
REDIRECTS = {301, 302, 303, 307, 308}
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}  # what chain steps send
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an HTTP header name (RFC 9110 token)
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass
class Recorded:
    """One kept call of the recording, normalised."""

    index: int  # position in the HAR file, for messages
    method: str
    origin: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # kept request headers (Authorization included; the correlator decides)
    cookies: list[tuple[str, str]] = field(default_factory=list)  # what the browser sent
    body: Body = field(default_factory=Body)
    status: int = 0  # the final status (after redirects); 0: no response recorded
    response_headers: dict[str, str] = field(default_factory=dict)
    set_cookies: list[tuple[str, str]] = field(default_factory=list)  # of the final response
    jar_cookies: set[str] = field(default_factory=set)  # cookie names its responses set (every hop)
    response_json: Any = None
    page_values: dict[str, str] = field(default_factory=dict)  # hidden inputs / meta of an HTML page
    started: float = 0.0  # seconds since the epoch
    duration: float = 0.0  # seconds
    page: bool = False  # an HTML page kept because later calls need what it returned

    @property
    def where(self) -> str:
        return f"entry {self.index} ({self.method} {self.path})"


@dataclass
class Selection:
    kept: list[Recorded]
    dropped: Counter[str]
    creator: str
    notes: list[str] = field(default_factory=list)


def read(path: str | Path, *, max_bytes: int = MAX_INPUT_BYTES) -> Any:
    """The JSON document of a file: size-capped, UTF-8, errors naming file, line and offset."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            raise ImportProblem(f"{path}: not a regular file (a folder, device or pipe)")
        with open(path, "rb") as fh:  # bounded even where the size on disk says nothing (/dev/zero)
            raw = fh.read(max_bytes + 1)
        if len(raw) > max_bytes:
            size = max(len(raw), path.stat().st_size)
            raise ImportProblem(
                f"{path}: {size / 1048576:.1f} MB is more than the {max_bytes / 1048576:.0f} MB limit "
                "(raise it with --max-input-mb)"
            )
    except OSError as exc:
        raise ImportProblem(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportProblem(
            f"{path}: not UTF-8 text (byte offset {exc.start}: {raw[exc.start : exc.start + 4]!r}); "
            "HAR files are UTF-8 JSON"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportProblem(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise ImportProblem(f"{path}: JSON nested too deeply to read") from None


def load(path: str | Path, *, max_bytes: int = MAX_INPUT_BYTES) -> tuple[Har, list[str]]:
    """The typed HAR document and notes about what was assumed; :class:`ImportProblem` when unreadable."""
    doc = read(path, max_bytes=max_bytes)
    har = har_schema.parse(doc, str(path))
    notes = []
    version = har.log.version
    if not version:
        har.log.version = DEFAULT_VERSION
        notes.append(f"no log.version in {Path(path).name}: read as HAR {DEFAULT_VERSION}")
    elif version not in SUPPORTED_VERSIONS:
        raise ImportProblem(
            f"{path}: log.version: unsupported HAR version {version!r}; "
            f"HAR {' and '.join(SUPPORTED_VERSIONS)} are supported"
        )
    return har, notes


def _matches(patterns: list[str], host: str, path: str) -> bool:
    return any(
        fnmatch.fnmatch(f"{host}{path}", p) or fnmatch.fnmatch(path, p) or fnmatch.fnmatch(host, p)
        for p in patterns
    )


def _static(entry: Entry, method: str, path: str, mime: str) -> bool:
    if method != "GET":
        return False  # anything that sends data is an API call, whatever it answers
    kind = entry.resource_type
    if kind in API_TYPES:
        return False
    if kind in STATIC_TYPES:
        return True
    # Firefox: no resource type; judge by extension and the response's type.
    if path.lower().endswith(STATIC_EXTENSIONS):
        return True
    mime = mime.lower()
    return mime.startswith(STATIC_MIME_PREFIXES) or any(p in mime for p in STATIC_MIME_PARTS)


def _timestamp(value: str | None) -> float:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        return 0.0


def _response_text(entry: Entry) -> str | None:
    content = entry.response.content if entry.response else None
    if content is None or content.text is None:
        return None
    if (content.encoding or "").lower() == "base64":
        try:
            return base64.b64decode(content.text).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return None
    return content.text


def _mime(entry: Entry) -> str:
    content = entry.response.content if entry.response else None
    return str((content.mimeType if content else "") or "")


def _status(entry: Entry) -> int:
    status = entry.response.status if entry.response else 0
    return status if 100 <= status <= 599 else 0


def _pairs(items: list[NameValue] | None) -> list[tuple[str, str]]:
    return [(str(i.name), str(i.value or "")) for i in items or []]


def _parse_set_cookie(value: str) -> list[tuple[str, str]]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(value)
    except CookieError:
        name, sep, rest = value.partition("=")
        return [(name.strip(), rest.split(";", 1)[0].strip())] if sep and name.strip() else []
    return [(name, morsel.value) for name, morsel in jar.items()]


def set_cookies(entry: Entry) -> list[tuple[str, str]]:
    """Cookies a response set: its ``cookies`` list, else its ``Set-Cookie`` headers."""
    if entry.response is None:
        return []
    if entry.response.cookies:
        return [(n, v) for n, v in _pairs(entry.response.cookies) if n]
    out: list[tuple[str, str]] = []
    for name, value in _pairs(entry.response.headers):
        if name.lower() == "set-cookie":
            for line in value.split("\n"):  # some tools join several into one header
                out += _parse_set_cookie(line)
    return out


def request_cookies(entry: Entry) -> list[tuple[str, str]]:
    cookies = [(n, v) for n, v in _pairs(entry.request.cookies) if n]
    if cookies:
        return cookies
    for name, value in _pairs(entry.request.headers):
        if name.lower() == "cookie":
            for item in value.split(";"):
                key, sep, val = item.strip().partition("=")
                if sep and key:
                    cookies.append((key, val))
    return cookies


def _location(entry: Entry) -> str | None:
    response = entry.response
    if response is None or _status(entry) not in REDIRECTS:
        return None
    target = response.redirectURL or next(
        (v for n, v in _pairs(response.headers) if n.lower() == "location"), ""
    )
    if not target:
        return None
    try:
        return urllib.parse.urljoin(entry.request.url, target).split("#", 1)[0]
    except ValueError:
        return None


def _follow_ups(entries: list[tuple[int, Entry]]) -> dict[int, int]:
    """Redirect hops: entry index -> the index of the GET that followed its ``Location``."""
    follow: dict[int, int] = {}
    taken: set[int] = set()
    for pos, (index, entry) in enumerate(entries):
        target = _location(entry)
        if target is None:
            continue
        for later_index, later in entries[pos + 1 : pos + 21]:
            if later_index in taken or later.request.method.upper() != "GET":
                continue
            if later.request.url.split("#", 1)[0] == target:
                follow[index] = later_index
                taken.add(later_index)
                break
    return follow


def select(
    har: Har,
    *,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    keep_static: bool = False,
) -> Selection:
    """The calls of the recording a replay makes, in time order, and what was dropped and why."""
    include, exclude = include or [], exclude or []
    dropped: Counter[str] = Counter()
    notes: list[str] = []
    indexed = sorted(enumerate(har.log.entries), key=lambda ie: (_timestamp(ie[1].startedDateTime), ie[0]))
    by_index = dict(indexed)
    follow = _follow_ups(indexed)
    hops = set(follow.values())
    verdicts: dict[int, str] = {}  # index -> "" (kept) or why dropped
    for index, entry in indexed:
        request = entry.request
        method = request.method.strip().upper()
        try:
            parts = urllib.parse.urlsplit(request.url)
            host = parts.hostname or ""
        except ValueError:
            verdicts[index] = "malformed URL"
            continue
        path = parts.path or "/"
        forced = bool(include) and _matches(include, host, path)
        if not method or not _TOKEN.fullmatch(method):
            verdicts[index] = "malformed method"
        elif method not in METHODS:
            verdicts[index] = "method a replay cannot send (WebDAV, custom)"
        elif parts.scheme not in ("http", "https") or not parts.netloc:
            verdicts[index] = "not http"
        elif index in hops:
            verdicts[index] = "redirect the replay follows itself"
        elif exclude and _matches(exclude, host, path):
            verdicts[index] = "excluded"
        elif include and not forced:
            verdicts[index] = "not included"
        elif method == "OPTIONS":
            verdicts[index] = "CORS preflight"
        elif not forced and any(host == h or host.endswith("." + h) for h in ANALYTICS_HOSTS):
            verdicts[index] = "analytics"
        elif not forced and not keep_static and _static(entry, method, path, _mime(entry)):
            verdicts[index] = "static asset or page"
        else:
            verdicts[index] = ""
    _keep_needed_pages(indexed, verdicts)

    kept: list[Recorded] = []
    no_response = 0
    for index, entry in indexed:
        if verdicts[index] not in ("", "page"):
            dropped[verdicts[index]] += 1
            continue
        last, jar = index, {n for n, _ in set_cookies(entry)}
        while last in follow:  # hops only point forward: no cycles
            last = follow[last]
            jar |= {n for n, _ in set_cookies(by_index[last])}
        rec = _normalise(index, entry, by_index[last], notes)
        rec.jar_cookies = jar
        rec.page = verdicts[index] == "page"
        if rec.status == 0:
            no_response += 1
        kept.append(rec)
    if no_response:
        notes.append(
            f"{no_response} entries have no response (blocked, aborted or hand-written): kept as calls "
            "that expect any 2xx/3xx status, with nothing captured from them"
        )
    pages = [r for r in kept if r.page]
    if pages:
        notes.append(
            f"kept {len(pages)} page load(s) whose cookies or form fields later calls use: "
            + ", ".join(f"GET {r.path}" for r in pages[:5])
        )
    if len(kept) > MAX_CALLS:
        raise ImportProblem(
            f"{len(kept)} calls kept; more than {MAX_CALLS} is not a scenario a person can edit "
            "(narrow it with --include/--exclude)"
        )
    creator = (har.log.creator.name if har.log.creator else None) or "unknown"
    return Selection(kept, dropped, str(creator), notes)


def _keep_needed_pages(indexed: list[tuple[int, Entry]], verdicts: dict[int, str]) -> None:
    """Keep dropped HTML pages whose hidden form fields or cookies a later kept call sends."""
    # Everything kept calls send, in order, as one text (a value's first offset says which call);
    # and for every cookie sent, the position of the last call that sent it.
    texts: list[str] = []
    starts: list[int] = []
    positions: list[int] = []
    last_sent: dict[tuple[str, str], int] = {}
    offset = 0
    for pos, (index, entry) in enumerate(indexed):
        if verdicts[index] != "":
            continue
        text = _sent_text(entry) + "\0"
        texts.append(text)
        starts.append(offset)
        positions.append(pos)
        offset += len(text)
        for cookie in request_cookies(entry):
            last_sent[cookie] = pos
    sent_text = "".join(texts)
    for pos, (index, entry) in enumerate(indexed):
        if verdicts[index] != "static asset or page" or "html" not in _mime(entry).lower():
            continue
        if entry.request.method.strip().upper() != "GET":
            continue
        values = {v for v in form_values(_response_text(entry) or "").values() if len(v) >= 4}
        cookies = {(n, v) for n, v in set_cookies(entry) if len(v) >= 4}
        later = bisect.bisect_right(positions, pos)
        if later == len(positions):
            continue
        if any(last_sent.get(c, -1) > pos for c in cookies) or any(
            sent_text.find(v, starts[later]) != -1 for v in values
        ):
            verdicts[index] = "page"


def _sent_text(entry: Entry) -> str:
    request = entry.request
    parts = [request.url, *(v for _, v in _pairs(request.headers))]
    if request.postData is not None:
        parts.append(request.postData.text or "")
        parts += [str(p.value or "") for p in request.postData.params or []]
    text = "\n".join(parts)
    return text + "\n" + urllib.parse.unquote_plus(text)


def _headers(index: int, entry: Entry, notes: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in _pairs(entry.request.headers):
        if name.startswith(":") or name.lower() in DROPPED_HEADERS or name.lower().startswith("sec-"):
            continue  # HTTP/2 pseudo-headers (Chrome), browser-managed headers
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            notes.append(
                f"entry {index}: dropped header {name[:40]!r}: not a valid HTTP header name or value"
            )
            continue
        headers[name] = value
    return headers


def _normalise(index: int, entry: Entry, final: Entry, notes: list[str]) -> Recorded:
    request = entry.request
    parts = urllib.parse.urlsplit(request.url)
    method = request.method.strip().upper()
    path = parts.path or "/"
    status = _status(final)
    if status in REDIRECTS:
        status = 0  # the replay follows redirects the recording did not: any final status will do
    rec = Recorded(
        index=index,
        method=method,
        origin=f"{parts.scheme}://{parts.netloc}",
        path=path,
        query=urllib.parse.parse_qsl(parts.query, keep_blank_values=True),
        headers=_headers(index, entry, notes),
        cookies=request_cookies(entry),
        status=status,
        response_headers={n.lower(): v for n, v in _pairs(final.response.headers if final.response else [])},
        set_cookies=set_cookies(final),
        started=_timestamp(entry.startedDateTime),
        duration=max(0.0, float(entry.time or 0) / 1000.0),
    )
    rec.body = request_body(request.postData, request.bodySize, rec.where)
    notes += rec.body.notes
    text = _response_text(final)
    mime = _mime(final).lower()
    if text is not None and text.strip():
        if "json" in mime or text.lstrip()[:1] in ("{", "["):
            rec.response_json, _ = parse_json(text)
        elif "html" in mime or text.lstrip()[:1] == "<":
            rec.page_values = form_values(text)
    return rec


def main_origin(calls: list[Recorded]) -> str | None:
    """The origin most calls went to: the system under test."""
    counts = Counter(c.origin for c in calls)
    return counts.most_common(1)[0][0] if counts else None
