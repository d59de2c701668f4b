"""Rows of the run's data feeders, from Python::

    from loadstack.workload import data

    class Shopper(HttpUser):
        @task
        def buy(self):
            with data.row("accounts") as account:  # nobody else holds this row until the block ends
                self.client.post("/api/v1/auth/login", json={"email": account["email"], ...})

The profile names the feeders (``data: {accounts: {csv: accounts.csv, mode: unique}}``).
"""

from __future__ import annotations

from loadstack.workload.feeders import DataExhausted, row

__all__ = ["DataExhausted", "row"]
