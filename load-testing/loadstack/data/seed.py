"""Seeding before a run: create the run's synthetic customers on the target (``loadstack run`` step 1 of 3).

The customers are registered through the target's own API (the demo
platform's ``POST /api/v1/auth/register``), tagged with the run id header, so
the platform stores them like any other account.  Registering an account
that exists (same run id again) is fine: seeding is idempotent.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from loadstack import safety
from loadstack.data.synthetic import customer

RUN_ID_HEADER = "X-Loadstack-Run-Id"


@dataclass
class SeedReport:
    created: int = 0
    existing: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def seed_customers(
    target: str,
    run_id: str,
    count: int,
    *,
    seed: int = 1234,
    register_path: str = "/api/v1/auth/register",
    progress: Callable[[int, int], None] | None = None,
    concurrency: int = 8,
    allow_remote: bool = False,
) -> SeedReport:
    report = SeedReport()
    url = safety.check_request(target.rstrip("/"), register_path, allow_remote=allow_remote)

    def register(idx: int) -> str:
        c = customer(run_id, idx, seed)
        body = json.dumps({"email": c.email, "password": c.password, "name": c.name}).encode()
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json", RUN_ID_HEADER: run_id}
        )
        try:
            with safety.urlopen(request, allow_remote=allow_remote, timeout=10) as resp:
                return "created" if resp.status in (200, 201) else f"HTTP {resp.status}"
        except safety.RemoteTargetError as exc:  # the guard refused a hop (a redirect elsewhere)
            raise SeedRefused(f"seed: {exc} (registering customer {idx} at {register_path})") from None
        except urllib.error.HTTPError as exc:
            return "existing" if exc.code == 409 else f"HTTP {exc.code} for customer {idx}"
        except OSError as exc:
            return f"{type(exc).__name__}: {exc} for customer {idx}"

    done = 0
    with ThreadPoolExecutor(concurrency) as pool:
        for outcome in pool.map(register, range(count)):
            done += 1
            if outcome == "created":
                report.created += 1
            elif outcome == "existing":
                report.existing += 1
            else:
                report.errors.append(outcome)
            if progress and (done % 50 == 0 or done == count):
                progress(done, count)
    return report


class SeedError(Exception):
    """Seeding failed: the run must not start against half-seeded data."""


class SeedRefused(SeedError):
    """The target guard refused where seeding was sent (a redirect to another host): bad input, exit 2."""


def seed_run(
    target: str, run_id: str, spec: Any, say: Callable[[str], None], *, allow_remote: bool = False
) -> dict[str, Any]:
    """Seed a run's customers (``spec``: a profile's ``seed:``), telling ``say`` how it goes."""
    say(f"seed: creating {spec.customers} synthetic customers on {target} …")
    report = seed_customers(
        target,
        run_id,
        spec.customers,
        seed=spec.seed,
        register_path=spec.register_path,
        progress=lambda done, total: (
            say(f"  seed: {done}/{total}") if total >= 200 and done < total else None
        ),
        allow_remote=allow_remote,
    )
    say(f"seed: {report.created} created, {report.existing} already there")
    if not report.ok:
        raise SeedError(f"seeding failed ({len(report.errors)} errors), first: {report.errors[0]}")
    return {"customers": spec.customers, "created": report.created, "existing": report.existing}
