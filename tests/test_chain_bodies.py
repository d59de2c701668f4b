"""HTTP body kinds of chain steps (form, multipart, body_file) against the demo platform's echo endpoints.

The echo endpoints answer what they received: decoded form fields, the parts of a multipart body
(names, file names, content types, sizes, SHA-256) and a raw body's size and SHA-256.  The chains'
checks compare that with what the files hold, so an encoding slip fails a step.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.helpers import loadstack, loadstack_in_process, rows_by_name, summary, write_profile

UPLOAD = bytes(range(256)) * 8 + b"\r\n--\r\n\r\rend\n"  # CR/LF and a boundary-like line inside the data
NOTES = "line one\r\nline two — ü\n".encode()
RAW = os.urandom(1000) + b"{{ vars.n }}"  # never templated: the braces go out as bytes

CHAIN = """
name: bodies
vars: {{n: 3}}
steps:
  - name: form
    http:
      method: POST
      path: /api/v1/forms/echo
      form: {{"field[1]": "{{{{ vars.n }}}}", plain: "a b", tricky: "50% & more+=?", tags: [x, "y z"], "ü k": 1.5}}
    check: >-
      last.json.content_type == 'application/x-www-form-urlencoded'
      and last.json.fields == {{'field[1]': '3', 'plain': 'a b', 'tricky': '50% & more+=?',
                               'tags': ['x', 'y z'], 'ü k': '1.5'}}
  - name: upload
    http:
      method: POST
      path: /api/v1/uploads
      multipart:
        fields: {{title: "Quarterly {{{{ vars.n }}}}", count: 2}}
        files:
          - {{field: attachment, path: files/upload-1.bin, filename: report.pdf, content_type: application/pdf}}
          - {{field: notes, path: files/notes.txt}}
    check: >-
      last.json.fields == {{'title': 'Quarterly 3', 'count': '2'}}
      and last.json.files == [
        {{'field': 'attachment', 'filename': 'report.pdf', 'content_type': 'application/pdf',
         'size': {upload_size}, 'sha256': '{upload_sha}'}},
        {{'field': 'notes', 'filename': 'notes.txt', 'content_type': 'application/octet-stream',
         'size': {notes_size}, 'sha256': '{notes_sha}'}}]
  - name: static_upload
    http:
      method: POST
      path: /api/v1/uploads
      multipart:
        files: [{{field: attachment, path: files/upload-1.bin}}]
    check: "last.json.files[0].filename == 'upload-1.bin' and last.json.files[0].sha256 == '{upload_sha}'"
  - name: raw
    http:
      method: POST
      path: /api/v1/bodies/echo
      body_file: {{path: files/body-3.bin}}
    check: >-
      last.json.content_type == 'application/octet-stream'
      and last.json.size == {raw_size} and last.json.sha256 == '{raw_sha}'
  - name: raw_typed_by_header
    http:
      method: POST
      path: /api/v1/bodies/echo
      headers: {{content-type: application/x-custom}}
      body_file: {{path: files/body-3.bin}}
    check: "last.json.content_type == 'application/x-custom' and last.json.size == {raw_size}"
"""

PYTHON_USERS = """
from loadstack.chains import ChainUser, configured_chains, from_python
from loadstack.chains import steps as s

FILES = {files!r}

python_bodies = from_python(
    "python_bodies",
    [
        s.http(
            "form",
            "POST",
            "/api/v1/forms/echo",
            form={{"a b": "c&d", "n": "{{{{ user.index }}}}"}},
            check="last.json.fields['a b'] == 'c&d' and last.json.fields.n == user.index | string",
        ),
        s.http(
            "upload",
            "POST",
            "/api/v1/uploads",
            multipart={{
                "fields": {{"title": "t"}},
                "files": [{{"field": "f", "path": FILES + "/upload-1.bin", "content_type": "image/png"}}],
            }},
            check="last.json.files[0].content_type == 'image/png' and last.json.files[0].sha256 == '{upload_sha}'",
        ),
        s.http(
            "raw",
            "POST",
            "/api/v1/bodies/echo",
            body_file=FILES + "/body-3.bin",
            check="last.json.sha256 == '{raw_sha}'",
        ),
    ],
)


class BodiesUser(ChainUser):
    def get_chains(self):
        return [*configured_chains(), python_bodies]
"""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_files(directory: Path) -> dict[str, object]:
    files = directory / "files"
    files.mkdir(parents=True)
    (files / "upload-1.bin").write_bytes(UPLOAD)
    (files / "notes.txt").write_bytes(NOTES)
    (files / "body-3.bin").write_bytes(RAW)
    return {
        "upload_size": len(UPLOAD),
        "upload_sha": _sha(UPLOAD),
        "notes_size": len(NOTES),
        "notes_sha": _sha(NOTES),
        "raw_size": len(RAW),
        "raw_sha": _sha(RAW),
    }


@pytest.mark.slow
def test_form_multipart_and_body_file_steps_in_a_real_run(tmp_path: Path) -> None:
    chains = tmp_path / "chains"
    figures = _write_files(chains)
    (chains / "bodies.yml").write_text(CHAIN.format(**figures))
    locustfile = tmp_path / "bodies_users.py"
    locustfile.write_text(PYTHON_USERS.format(files=str(chains / "files"), **figures))
    profile = write_profile(
        tmp_path / "bodies.yml",
        locustfile=str(locustfile),
        users=2,
        spawn_rate=2,
        run_time="6s",
        wait_time={"min": 0.05, "max": 0.1},
        chains=[{"path": str(chains / "bodies.yml")}],
    )
    out = loadstack("run", "--profile", str(profile), "--run-id", "bodies", "--results-dir", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    doc = summary(tmp_path, "bodies")
    rows = rows_by_name(doc)
    assert doc["totals"]["failures"] == 0, doc["errors"]
    for chain, steps in {
        "bodies": ["form", "upload", "static_upload", "raw", "raw_typed_by_header"],
        "python_bodies": ["form", "upload", "raw"],
    }.items():
        assert rows[("CHAIN", chain)]["count"] >= 3, rows.keys()
        for step in steps:
            assert rows[("HTTP", f"{chain}/{step}")]["count"] >= rows[("CHAIN", chain)]["count"]


def test_request_file_problems_are_reported_before_any_load(tmp_path: Path) -> None:
    _write_files(tmp_path)
    (tmp_path / "outside.bin").write_bytes(b"x")
    chain = tmp_path / "sub" / "files.yml"
    chain.parent.mkdir()
    chain.write_text(
        "name: files\n"
        "steps:\n"
        "  - name: escape\n"
        "    http:\n"
        "      method: POST\n"
        "      path: /x\n"
        "      body_file: {path: ../outside.bin}\n"
        "  - name: uploads\n"
        "    http:\n"
        "      method: POST\n"
        "      path: /x\n"
        "      multipart:\n"
        "        files:\n"
        f"          - {{field: a, path: {tmp_path / 'files' / 'upload-1.bin'}}}\n"
        "          - {field: b, path: files/missing.bin}\n"
        "  - name: probe\n"
        "    await:\n"
        "      http: {method: POST, path: /x, body_file: {path: nowhere.bin}}\n"
    )
    out = loadstack_in_process("chain", "validate", str(chain))
    assert out.returncode == 2, out.stdout + out.stderr
    for expected in (
        f"{chain}:7: steps[0].http.body_file.path: '../outside.bin' leaves the chain file's directory",
        f"{chain}:14: steps[1].http.multipart.files[0].path: '{tmp_path}/files/upload-1.bin' is absolute",
        f"{chain}:15: steps[1].http.multipart.files[1].path: no such file: 'files/missing.bin'",
        f"{chain}:18: steps[2].await.http.body_file.path: no such file: 'nowhere.bin'",
    ):
        assert expected in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_one_body_kind_per_request(tmp_path: Path) -> None:
    chain = tmp_path / "two.yml"
    chain.write_text(
        "name: two\nsteps:\n  - name: a\n    http:\n      path: /x\n      json: {a: 1}\n      form: {b: 2}\n"
    )
    out = loadstack_in_process("chain", "validate", str(chain))
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"{chain}:5: steps[0].http: give at most one body" in out.stderr
    assert "found json, form" in out.stderr
