"""Run data: deterministic synthetic records, seeding them before a run, drawing them during it, teardown after."""
