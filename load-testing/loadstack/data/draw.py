"""Drawing seeded records during a run, without two workers taking the same record.

Worker ``w`` of ``n`` owns records ``w, w+n, w+2n, …``; the users of a worker
take that worker's records in turn (greenlets need no lock for a counter).
Records are regenerated from the seed, so drawing costs no I/O.
"""

from __future__ import annotations

import random
from typing import Any

from loadstack import runcontext
from loadstack.data.synthetic import Customer, customer, order_amount


class SeedPool:
    def __init__(self, run_id: str, count: int, seed: int, worker_index: int = 0, workers: int = 1) -> None:
        if count < 1:
            raise ValueError("no seeded records: the profile's seed.customers must be >= 1")
        self.run_id = run_id
        self.seed = seed
        self.indices = list(range(worker_index % workers, count, workers)) or list(range(count))
        self._next = 0
        self._cache: dict[int, Customer] = {}

    def draw(self, rng: random.Random) -> dict[str, Any]:
        idx = self.indices[self._next % len(self.indices)]
        self._next += 1
        record = self._cache.get(idx)
        if record is None:
            record = self._cache[idx] = customer(self.run_id, idx, self.seed)
        return {**record.as_dict(), "amount": order_amount(record, rng)}


_pool: SeedPool | None = None


def pool(worker_index: int = 0) -> SeedPool:
    """This process's pool, from the run settings (``seed: {customers, seed}``) and the worker index."""
    global _pool
    if _pool is None:
        ctx = runcontext.current()
        spec = ctx.settings.seed
        _pool = SeedPool(
            ctx.run_id,
            spec.customers if spec else 0,
            spec.seed if spec else 1234,
            worker_index,
            ctx.settings.workers,
        )
    return _pool
