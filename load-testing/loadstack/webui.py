"""Locust's live web UI, masked: every body it serves passes the run's masker, format kept.

The web UI serves the run's data as it changes: request names and failure messages
(``/stats/requests``, the CSV downloads), exceptions with their tracebacks (``/exceptions``),
logs (``/logs``), the host (``/``, ``/swarm``).  A request name like ``/x?token=…`` went to the
browser as it was.  :func:`mask_responses` puts one ``after_request`` hook on the UI's Flask app
that masks every body by its content type with the masker the run already has:

* JSON is parsed, masked value by value and written back (``Masker.mask_document``);
* CSV is masked cell by cell, and so stays CSV;
* HTML rendered from a template is masked at its data: the index page's ``template_args`` here
  (Flask's ``before_render_template`` signal), the report's in ``master.mask_report_data``; the
  page's bytes, a JavaScript bundle among them, are never rewritten (that once broke the report).
  HTML that no template made (an error message) has its text and attribute values masked;
* other text line by line; scripts, styles, pictures and the ``/assets/`` files are untouched.

The UI polls ``/stats/requests`` every 2 s, and Locust memoizes that response object: a masked
response is marked, so a memoized one is masked once, not on every poll.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from loadstack.masking import Masker

# Endpoints whose bodies are the UI's own code and pictures, not the run's data.
_UNTOUCHED_ENDPOINTS = frozenset({"locust.send_assets", "static"})
# Content types that are code: masking their bytes would change what they do.
_CODE_TYPES = frozenset({"text/javascript", "application/javascript", "text/css"})
_MASKED = "_loadstack_masked"  # set on a response object once its body is masked
_TEMPLATE_FLAG = "loadstack_template_masked"  # on flask.g: this request's page came from masked data


def note_masked_template() -> None:
    """Record that the page of the current request (if any) was rendered from masked data, so its
    bytes are left as they are: called by every renderer that masks a template's data."""
    from flask import g, has_request_context

    if has_request_context():
        setattr(g, _TEMPLATE_FLAG, True)


def kind_of(mimetype: str) -> str | None:
    """The masker's document kind for a content type, or None for what is not masked (code, binary)."""
    mimetype = mimetype.lower()
    if mimetype in _CODE_TYPES:
        return None
    if mimetype == "application/json" or mimetype.endswith("+json"):
        return "json"
    if mimetype in ("text/csv", "application/csv"):
        return "csv"
    if mimetype in ("text/html", "application/xhtml+xml"):
        return "html"
    if mimetype in ("application/xml", "text/xml", "image/svg+xml"):
        return "xml"
    if mimetype.startswith("text/") or mimetype == "application/x-ndjson":
        return "text"
    return None


def _masked_lines(masker: Masker, chunks: Iterable[bytes | str]) -> Iterator[bytes]:
    """A stream that never ends (server-sent events, a log tail) masked line by line as it flows,
    as the console is (``masking.MaskingStream``): a line is masked once it is complete."""
    pending = ""
    for chunk in chunks:
        pending += chunk.decode("utf-8", "surrogateescape") if isinstance(chunk, bytes) else chunk
        if "\n" in pending:
            complete, pending = pending.rsplit("\n", 1)
            yield (masker.mask_document(complete + "\n", "text")).encode("utf-8", "surrogateescape")
    if pending:
        yield masker.mask_document(pending, "text").encode("utf-8", "surrogateescape")


def mask_response(response: Any, masker: Masker, *, template_masked: bool = False) -> Any:
    """``response`` with its body masked according to its content type (see the module docstring)."""
    if getattr(response, _MASKED, False):
        return response
    kind = kind_of(response.mimetype or "")
    if kind is None or (kind == "html" and template_masked):
        return response
    if response.is_streamed and not response.direct_passthrough and kind == "text":
        response.response = _masked_lines(masker, response.response)
        response.headers.pop("Content-Length", None)
        setattr(response, _MASKED, True)
        return response
    # A document (JSON, CSV, a page) is masked whole: a file (``send_file``) or generator is read
    # to its end, which every document Locust streams has.  Range requests were made whole
    # before the view ran (see ``mask_responses``), so a masked part is never a broken part.
    passthrough = response.direct_passthrough
    response.direct_passthrough = False
    raw = response.get_data()
    text = raw.decode("utf-8", "surrogateescape")
    masked = masker.mask_document(text, kind)
    if masked != text:
        response.set_data(masked.encode("utf-8", "surrogateescape"))
        # The validators described the unmasked bytes.
        for header in ("ETag", "Content-MD5", "Accept-Ranges"):
            response.headers.pop(header, None)
    elif passthrough:
        response.headers.pop("Accept-Ranges", None)
    setattr(response, _MASKED, True)
    return response


def _restore_masked_form(web_ui: Any, masker: Masker) -> None:
    """A ``/swarm`` form field that comes back as the masked value the page showed means "as it
    was": the real value goes on.  Without this, a host with a password in it, shown masked in the
    form, would become ``http://user:***@…`` on Start."""
    from flask import request
    from werkzeug.datastructures import ImmutableMultiDict

    env = web_ui.environment
    options = vars(env.parsed_options) if env.parsed_options is not None else {}
    items = list(request.form.items(multi=True))
    restored = []
    changed = False
    for key, value in items:
        # The form's host is what the page showed: the run's host, or the user classes' one host.
        real = (env.host or web_ui.template_args.get("host")) if key == "host" else options.get(key)
        if isinstance(real, str) and value != real and value == masker(real):
            value, changed = real, True
        restored.append((key, value))
    if changed:
        request.form = ImmutableMultiDict(restored)


def mask_responses(web_ui: Any, masker: Masker) -> None:
    """Mask every body ``web_ui`` (Locust's ``WebUI``) serves with ``masker`` (idempotent).

    Called on ``init``, before Locust starts the UI's server: Flask takes no new hooks once it
    has answered a request.
    """
    from flask import before_render_template, g, request

    app = web_ui.app
    if getattr(app, "loadstack_masker", None) is masker:
        return
    app.loadstack_masker = masker

    def mask_template_data(sender: Any, template: Any, context: dict[str, Any], **_: Any) -> None:
        # The index page: `window.templateArgs = {{ template_args|tojson }}` (host, history, the
        # form's options).  The data is masked, the page's code is not touched.
        if "template_args" in context:
            context["template_args"] = masker.mask_obj(context["template_args"])
        note_masked_template()

    # blinker keeps receivers weakly by default; this one lives as long as the app.
    before_render_template.connect(mask_template_data, app, weak=False)

    @app.before_request
    def whole_bodies() -> None:
        if request.endpoint in _UNTOUCHED_ENDPOINTS:
            return
        # A masked body has other lengths than the file it came from: byte ranges of the file
        # would cut the masked document anywhere.  The whole body is sent instead (a 200, as
        # HTTP allows for a server that ignores Range).
        request.environ.pop("HTTP_RANGE", None)
        request.environ.pop("HTTP_IF_RANGE", None)
        if request.endpoint == "locust.request_stats_full_history_csv":
            # Locust's writer flushes the file every 5 s: the download shows what is known now.
            handle = getattr(web_ui.stats_csv_writer, "stats_history_csv_filehandle", None)
            if handle is not None and not handle.closed:
                handle.flush()
        if request.endpoint == "locust.swarm" and request.method == "POST":
            _restore_masked_form(web_ui, masker)

    @app.after_request
    def mask_body(response: Any) -> Any:
        if request.endpoint in _UNTOUCHED_ENDPOINTS:
            return response
        return mask_response(response, masker, template_masked=bool(g.get(_TEMPLATE_FLAG)))
