"""Load-testing chains: ordered, dependent steps across HTTP, WebSocket, SQL, AMQP and Redis.

Declarative: ``load-testing/chains/*.yml`` (``load_file``).  Python: build steps
with ``loadstack.chains.steps`` (``http``, ``sql``, ``await_redis``, ``python`` …),
make a chain with ``from_python`` and run it from a ``ChainUser``.  Both run
through the same engine and report the same stats.

The names below are imported on first use: importing ``loadstack.chains``
alone (e.g. for ``templates``) must not import Locust, which gevent-patches
the importing process.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Chain", "ChainUser", "configured_chains", "from_python", "load_file"]

_WHERE = {
    "Chain": "loadstack.chains.engine",
    "ChainUser": "loadstack.chains.user",
    "configured_chains": "loadstack.chains.user",
    "from_python": "loadstack.chains.loader",
    "load_file": "loadstack.chains.loader",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'loadstack.chains' has no attribute {name!r}")
