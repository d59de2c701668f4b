"""``ChainUser``: a Locust user that runs chains, alone or next to ordinary tasks."""

from __future__ import annotations

import logging
from typing import ClassVar

from locust import between, task

from loadstack.chains import loader
from loadstack.chains.engine import Chain
from loadstack.chains.runtime import ChainRuntime
from loadstack.users.base import RequestFailure
from loadstack.users.http import HttpUser

log = logging.getLogger("loadstack.chains")


class ChainUser(HttpUser):
    """Runs one of ``chains`` (by weight) per task.

    Python users set ``chains = [...]``; a plain ``@task`` can call
    ``self.run_chain(chain)`` to mix a chain with ordinary requests.  The
    user's ``client`` is Locust's ``FastHttpSession``, shared with chain
    ``http`` steps.
    """

    abstract = True
    wait_time = between(0.5, 2)
    chains: ClassVar[list[Chain]] = []

    def get_chains(self) -> list[Chain]:
        return self.chains

    def on_start(self) -> None:
        self.chain_runtime = ChainRuntime(self)
        for chain in self.get_chains():
            try:
                chain.prepare(self.chain_runtime)
            except RequestFailure:
                pass  # recorded; the steps that needed it will fail with a clear message

    def on_stop(self) -> None:
        self.chain_runtime.close()

    def run_chain(self, chain: Chain) -> bool:
        return chain.run(self.chain_runtime)

    @task
    def run_weighted_chain(self) -> None:
        chains = self.get_chains()
        if len(chains) == 1:
            chains[0].run(self.chain_runtime)
        elif chains:
            chain = self.chain_runtime.rng.choices(chains, weights=[c.weight for c in chains])[0]
            chain.run(self.chain_runtime)


_configured: list[Chain] | None = None


def configured_chains() -> list[Chain]:
    """The run's chain files (``$LOADSTACK_CHAINS`` or the profile's ``chains``), loaded once per process."""
    global _configured
    if _configured is None:
        _configured = loader.load_all(loader.configured())
        log.info("chains: %s", ", ".join(f"{c.name} (weight {c.weight:g})" for c in _configured) or "none")
    return _configured
