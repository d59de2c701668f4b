"""argparse types for bounded flags: a bad value is argparse's exit status 2 naming the flag.

The same bounds as the files and variables (:mod:`loadstack.limits`), checked where
the flag is parsed, so ``--users 1e20`` or ``--spawn-rate inf`` never reaches a
run, a manifest or a traceback.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from loadstack import limits
from loadstack.durations import parse_duration


def int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: a whole number within ``[lo, hi]``."""

    def whole_number(text: str) -> int:
        try:
            return limits.bounded_int(text, lo, hi)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return whole_number


def float_in(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number within ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""

    def number(text: str) -> float:
        try:
            return limits.bounded_float(text, lo, hi, lo_open=lo_open)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return number


def duration_flag(text: str) -> str:
    """An argparse type: a duration such as 30s or 5m (kept as text; profiles.resolve converts it)."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return text


# Names that end up in generated YAML, a kubectl command line or a file name: matched as a whole
# (fullmatch), so a trailing newline is not "the end" as ``$`` would have it.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a namespace (RFC 1123 label)
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")  # a PVC or other object name
# A container image reference (the distribution/reference grammar): [domain[:port]/]path[:tag][@digest]
_IMAGE_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]{1,5})?"
_IMAGE_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_IMAGE = re.compile(
    rf"(?:{_IMAGE_DOMAIN}/)?{_IMAGE_PATH}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def namespace_flag(text: str) -> str:
    """An argparse type: a Kubernetes namespace, a DNS-1123 label (lower case, digits, '-', <= 63)."""
    if not _DNS_LABEL.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"invalid namespace {text[:80]!r}: use 1-63 lower-case letters, digits or '-', "
            "starting and ending with a letter or digit"
        )
    return text


def object_name_flag(text: str) -> str:
    """An argparse type: a Kubernetes object name (a DNS-1123 subdomain, <= 253 characters)."""
    if not _DNS_SUBDOMAIN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"invalid name {text[:80]!r}: use lower-case letters, digits, '-' or '.', at most 253"
        )
    return text


def image_flag(text: str) -> str:
    """An argparse type: a container image reference such as ``registry:5000/team/loadstack:1.2``."""
    if len(text) > 512 or not _IMAGE.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"invalid image reference {text[:80]!r}: give [REGISTRY/]NAME[:TAG][@sha256:DIGEST]"
        )
    return text


def url_flag(text: str) -> str:
    """An argparse type: an http(s) URL with a host and no spaces or control characters."""
    problem = None
    if len(text) > 2048:
        problem = "longer than 2048 characters"
    elif _CONTROL.search(text) or " " in text:
        problem = "has spaces or control characters"
    else:
        try:
            parts = urlsplit(text)
            host = parts.hostname
            _ = parts.port  # out of range (http://h:99999) is a ValueError here, not a failed run later
        except ValueError as exc:
            problem = str(exc)
        else:
            if parts.scheme not in ("http", "https") or not host:
                problem = "give http://HOST[:PORT] or https://HOST[:PORT]"
    if problem:
        raise argparse.ArgumentTypeError(f"invalid URL {text[:80]!r}: {problem}")
    return text


def text_flag(text: str) -> str:
    """An argparse type: free text on one line (a name, a profile, a context), at most 4096 characters."""
    if _CONTROL.search(text):
        raise argparse.ArgumentTypeError(f"{text[:80]!r} has a control character (a newline?)")
    if len(text) > 4096:
        raise argparse.ArgumentTypeError(f"{text[:40]!r}… is longer than 4096 characters")
    return text


_PROFILE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,256}")  # a profile's `name:` (profiles.Profile.name)


def profile_name_flag(text: str) -> str:
    """An argparse type: a profile by name (``k8s render`` puts it into a ConfigMap, not a path)."""
    if not _PROFILE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"invalid profile name {text[:80]!r}: use letters, digits, '.', '_' or '-' (a name in profiles/)"
        )
    return text


def run_id_flag(text: str) -> str:
    """An argparse type: a run id names folders, files and keys, so the whole text must match."""
    from loadstack import runcontext

    try:
        return runcontext.check_run_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


PORT = int_in(1, 65535)
USERS = int_in(1, limits.MAX_USERS)
WORKERS = int_in(1, limits.MAX_WORKERS)
SPAWN_RATE = float_in(0, limits.MAX_SPAWN_RATE, lo_open=True)
MEGABYTES = float_in(0, 1024, lo_open=True)
