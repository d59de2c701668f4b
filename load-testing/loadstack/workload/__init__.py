"""The workload model: open-model arrival rates, iteration budgets and data feeders.

* :mod:`~loadstack.workload.rates` — ``10/s`` and the schedules rates add up to
* :mod:`~loadstack.workload.plan` — what each user class does (pool, arrival processes, budgets)
* :mod:`~loadstack.workload.pacing` — start times on one process, and dropped iterations
* :mod:`~loadstack.workload.budgets` — exactly N iterations across all workers
* :mod:`~loadstack.workload.feeders` — CSV/SQL rows, one holder at a time
* :mod:`~loadstack.workload.runtime` — all of it inside Locust
* :mod:`~loadstack.workload.data` — the Python API: ``with data.row("accounts") as account:``

Only :mod:`rates` is imported by profile validation; the rest runs in Locust processes.
"""
