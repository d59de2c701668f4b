"""Load-testing chains: ordered, dependent steps across HTTP, WebSocket, SQL, AMQP and Redis.

Declarative: ``load-testing/chains/*.yml`` (``loader.load_file``).  Python:
build steps with ``loadstack.chains.steps`` (``http``, ``sql``, ``await_redis``,
``python`` …), make a chain with ``loader.from_python`` and run it from a
``ChainUser``.  Both run through the same engine and report the same stats.
"""

from loadstack import plugin
from loadstack.chains import metrics
from loadstack.chains.engine import Chain
from loadstack.chains.loader import from_python, load_file
from loadstack.chains.user import ChainUser, configured_chains

plugin.init_hooks.append(metrics.counters.attach)
plugin.summary_sections["chains"] = metrics.section

__all__ = ["Chain", "ChainUser", "configured_chains", "from_python", "load_file"]
