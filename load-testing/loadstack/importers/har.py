"""Reading HAR files as browsers save them, and keeping only the API calls.

Chrome and Firefox both write HAR 1.2 (older Firefox wrote 1.1) but differ in
details this module evens out: Chrome marks each entry with ``_resourceType``
and may include HTTP/2 pseudo-headers (``:authority``); Firefox has neither,
writes local-time timestamps with an offset, lists form fields in
``postData.params`` and may base64-encode response bodies.  Either way the
result is a time-ordered list of :class:`Recorded` API calls.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from loadstack.importers import ImportProblem

SUPPORTED_VERSIONS = ("1.1", "1.2")
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
    "accept",
}  # fmt: skip


@dataclass
class Recorded:
    """One kept API call of the recording, normalised."""

    index: int  # position in the HAR file, for messages
    method: str
    origin: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # kept request headers (Authorization included; the correlator decides)
    json: Any = None
    has_json: bool = False
    form: list[tuple[str, str]] | None = None
    body: str | None = None
    content_type: str | None = None
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_json: Any = None
    started: float = 0.0  # seconds since the epoch
    duration: float = 0.0  # seconds


@dataclass
class Selection:
    kept: list[Recorded]
    dropped: Counter[str]
    creator: str


def load(path: str | Path) -> dict[str, Any]:
    """The HAR document; :class:`ImportProblem` naming what is wrong and where."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ImportProblem(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportProblem(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    log = doc.get("log") if isinstance(doc, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("entries"), list):
        raise ImportProblem(
            f"{path}: no log.entries — not a HAR file (in DevTools: Network tab → 'Save all as HAR')"
        )
    version = str(log.get("version") or "")
    if version not in SUPPORTED_VERSIONS:
        raise ImportProblem(
            f"{path}: unsupported HAR version {version or '(missing)'!r}; "
            f"HAR {' and '.join(SUPPORTED_VERSIONS)} are supported"
        )
    return doc


def _matches(patterns: list[str], host: str, path: str) -> bool:
    return any(
        fnmatch.fnmatch(f"{host}{path}", p) or fnmatch.fnmatch(path, p) or fnmatch.fnmatch(host, p)
        for p in patterns
    )


def _static(entry: dict[str, Any], method: str, path: str, mime: str) -> bool:
    if method != "GET":
        return False  # anything that sends data is an API call, whatever it answers
    kind = entry.get("_resourceType")
    if kind in API_TYPES:
        return False
    if kind in STATIC_TYPES:
        return True
    # Firefox: no resource type; judge by extension and the response's type.
    if path.lower().endswith(STATIC_EXTENSIONS):
        return True
    mime = mime.lower()
    return mime.startswith(STATIC_MIME_PREFIXES) or any(p in mime for p in STATIC_MIME_PARTS)


def _timestamp(value: Any) -> float:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _text(content: dict[str, Any]) -> str | None:
    text = content.get("text")
    if text is None:
        return None
    if content.get("encoding") == "base64":
        try:
            return base64.b64decode(text).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return None
    return str(text)


def _json_or_none(text: str | None, mime: str) -> tuple[Any, bool]:
    if text is None or not text.strip():
        return None, False
    if "json" in mime.lower() or text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text), True
        except ValueError:
            return None, False
    return None, False


def select(
    doc: dict[str, Any],
    *,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    keep_static: bool = False,
) -> Selection:
    """The API calls of the recording, in time order, and a count of what was dropped and why."""
    include, exclude = include or [], exclude or []
    dropped: Counter[str] = Counter()
    kept: list[Recorded] = []
    for index, entry in enumerate(doc["log"]["entries"]):
        request, response = entry.get("request") or {}, entry.get("response") or {}
        url, method = request.get("url"), str(request.get("method") or "").upper()
        if not url or not method:
            dropped["malformed"] += 1
            continue
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        path = parts.path or "/"
        if parts.scheme not in ("http", "https"):
            dropped["not http"] += 1
            continue
        status = int(response.get("status") or 0)
        content = response.get("content") or {}
        mime = str(content.get("mimeType") or "")
        forced = bool(include) and _matches(include, host, path)
        if exclude and _matches(exclude, host, path):
            dropped["excluded"] += 1
        elif include and not forced:
            dropped["not included"] += 1
        elif method == "OPTIONS":
            dropped["CORS preflight"] += 1
        elif status == 0:
            dropped["no response (blocked or aborted)"] += 1
        elif not forced and any(host == h or host.endswith("." + h) for h in ANALYTICS_HOSTS):
            dropped["analytics"] += 1
        elif not forced and not keep_static and _static(entry, method, path, mime):
            dropped["static asset or page"] += 1
        else:
            kept.append(_normalise(index, entry, parts, method, status, mime))
    kept.sort(key=lambda r: (r.started, r.index))
    creator = ((doc["log"].get("creator") or {}).get("name")) or "unknown"
    return Selection(kept, dropped, str(creator))


def _normalise(
    index: int, entry: dict[str, Any], parts: urllib.parse.SplitResult, method: str, status: int, mime: str
) -> Recorded:
    request, response = entry["request"], entry["response"]
    headers: dict[str, str] = {}
    for h in request.get("headers") or []:
        name = str(h.get("name", ""))
        if name.startswith(":") or name.lower() in DROPPED_HEADERS or name.lower().startswith("sec-"):
            continue  # HTTP/2 pseudo-headers (Chrome), browser-managed headers
        headers[name] = str(h.get("value", ""))
    rec = Recorded(
        index=index,
        method=method,
        origin=f"{parts.scheme}://{parts.netloc}",
        path=parts.path or "/",
        query=urllib.parse.parse_qsl(parts.query, keep_blank_values=True),
        headers=headers,
        status=status,
        response_headers={
            str(h.get("name", "")).lower(): str(h.get("value", "")) for h in response.get("headers") or []
        },
        started=_timestamp(entry.get("startedDateTime")),
        duration=max(0.0, float(entry.get("time") or 0) / 1000.0),
    )
    post = request.get("postData") or {}
    post_mime = str(post.get("mimeType") or "").split(";")[0].strip().lower()
    if post:
        text = post.get("text")
        if text is None and post.get("params"):
            # Firefox (and multipart forms): fields only, no raw text.
            rec.form = [(str(p.get("name", "")), str(p.get("value", ""))) for p in post["params"]]
        elif "json" in post_mime:
            rec.json, rec.has_json = _json_or_none(str(text or ""), "json")
            if not rec.has_json:
                rec.body, rec.content_type = str(text or ""), post_mime
        elif post_mime == "application/x-www-form-urlencoded":
            rec.form = urllib.parse.parse_qsl(str(text or ""), keep_blank_values=True)
        elif text:
            rec.body, rec.content_type = str(text), post_mime or "text/plain"
    rec.response_json, _ = _json_or_none(_text(response.get("content") or {}), mime)
    return rec


def main_origin(calls: list[Recorded]) -> str | None:
    """The origin most API calls went to: the system under test."""
    counts = Counter(c.origin for c in calls)
    return counts.most_common(1)[0][0] if counts else None
