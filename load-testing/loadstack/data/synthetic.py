"""Deterministic synthetic customers: production-like distributions, no real PII or card numbers.

Record ``i`` of a run depends only on ``(seed, i)`` (Faker and ``random`` are
seeded per record), so the runner that seeds the target and every worker
that draws records later produce exactly the same data without sharing any
storage.  Distributions are deliberately non-uniform and correlated:

* segment: consumer 70 %, small business 25 %, enterprise 5 %;
* order amount: log-normal whose median grows with the segment
  (≈ 40 / 180 / 900), i.e. a long tail of large orders;
* currency follows the country; the favourite SKU follows the segment.

E-mail addresses use the reserved ``example.test`` domain and carry the run id;
passwords are derived from the run id and index (throw-away accounts).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass
from typing import Any

from faker import Faker

SEGMENTS = (
    ("consumer", 0.70, 3.7),
    ("smb", 0.25, 5.2),
    ("enterprise", 0.05, 6.8),
)  # (name, share, log-median)
COUNTRIES = (
    ("DE", "EUR", 0.35),
    ("FR", "EUR", 0.2),
    ("GB", "GBP", 0.2),
    ("US", "USD", 0.2),
    ("CH", "CHF", 0.05),
)
SKUS = {
    "consumer": ["sensor-kit", "probe-x1", "cable-bnc"],
    "smb": ["scope-200", "logger-pro", "sensor-kit"],
    "enterprise": ["scope-900", "logger-fleet", "scope-200"],
}


@dataclass(frozen=True)
class Customer:
    idx: int
    email: str
    password: str
    name: str
    segment: str
    country: str
    currency: str
    favourite_sku: str
    amount_mu: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pick(rng: random.Random, options: tuple, weight_index: int) -> tuple:
    return rng.choices(options, weights=[o[weight_index] for o in options])[0]


def customer(run_id: str, idx: int, seed: int = 1234) -> Customer:
    rng = random.Random(seed * 1_000_003 + idx)
    fake = Faker()
    fake.seed_instance(seed * 1_000_003 + idx)
    segment, _, mu = _pick(rng, SEGMENTS, 1)
    country, currency, _ = _pick(rng, COUNTRIES, 2)
    password = hashlib.sha256(f"loadstack:{run_id}:{idx}".encode()).hexdigest()[:20]
    return Customer(
        idx=idx,
        email=f"lt-{run_id}-{idx}@example.test",
        password=password,
        name=fake.name(),
        segment=segment,
        country=country,
        currency=currency,
        favourite_sku=rng.choice(SKUS[segment]),
        amount_mu=mu,
    )


def order_amount(c: Customer, rng: random.Random) -> float:
    """One order amount for ``c``: log-normal around the segment's median, capped at 1e5."""
    return round(min(100_000.0, rng.lognormvariate(c.amount_mu, 0.6)), 2)
