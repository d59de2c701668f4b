"""Data feeders: rows of a CSV file or a SQL query, each held by one user at a time.

The master loads every source once (:func:`load`) and hands rows out
(:class:`Distributor`); workers ask for rows when their users need them
(:class:`Feeders`), over Locust's message channel.  A row is *leased*: no other
user, on any worker, gets it until the holder gives it back at the end of its
iteration.  Modes:

``unique``  every row once; then the run stops (``on_exhausted: stop``) or a new
            round starts with the rows given back (``recycle``)
``cycle``   in file order; a row given back goes to the end of the line
``random``  any free row

From Python: ``with data.row("accounts") as account: ...``; from a chain:
``data: accounts`` in the chain file and ``{{ data.email }}`` in its steps.
"""

from __future__ import annotations

import csv
import io
import random
import re
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from locust.exception import StopUser

from loadstack import configfile
from loadstack.profiles import DataSource
from loadstack.workload.channel import Client

KIND_LEASE = "rows"
KIND_RETURN = "rows_back"
MAX_ROWS = 1_000_000
MAX_CSV_BYTES = 512 * 1024 * 1024  # a CSV feeder's file (data, not configuration: far above 5 MB)
SQL_TIMEOUT_S = 60  # a feeder query that takes longer is an error, not a stalled master
POLL_S = 0.2  # every row is held by another user: ask again after this long


class FeederError(ValueError):
    """A data source that cannot be read (exit status 2 at the master's start)."""


class DataExhausted(StopUser):
    """A ``unique`` feeder gave out its last row: the user stops (and the master ends the run)."""


Row = dict[str, Any]


def load(name: str, source: DataSource) -> list[Row]:
    """The rows of a source, read once by the master."""
    if source.csv is not None:
        return _csv(name, Path(source.csv))
    assert source.sql is not None
    return _sql(name, source.sql)


def _csv(name: str, path: Path) -> list[Row]:
    try:  # a regular file, size-capped, UTF-8 text: problems name the byte offset
        text = configfile.read_text(path, MAX_CSV_BYTES, kind="CSV")
    except configfile.ConfigError as exc:
        raise FeederError(f"data.{name}.csv: {exc}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise FeederError(f"data.{name}.csv: {path}: no header row (the first line names the columns)")
        rows = []
        for record in reader:
            if not record:
                continue  # blank line
            if len(record) != len(header):
                raise FeederError(
                    f"data.{name}.csv: {path}:{reader.line_num}: {len(record)} fields where the header "
                    f"has {len(header)} ({', '.join(header)[:120]})"
                )
            rows.append(dict(zip(header, record, strict=True)))
            if len(rows) > MAX_ROWS:
                break
    except csv.Error as exc:
        raise FeederError(f"data.{name}.csv: {path}:{reader.line_num}: {exc}") from None
    if not rows:
        raise FeederError(f"data.{name}.csv: {path}: no rows under the header")
    return _bounded(f"data.{name}.csv: {path}", rows, "split the file")


def _bounded(where: str, rows: list[Row], how: str) -> list[Row]:
    """Rows within :data:`MAX_ROWS`; more is an error, never a silently shorter feeder."""
    if len(rows) > MAX_ROWS:
        raise FeederError(f"{where}: more than {MAX_ROWS:,} rows; a feeder holds at most that many ({how})")
    return rows


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def _sql(name: str, query: str) -> list[Row]:
    from loadstack.users import postgres  # imports psycopg2 (gevent-patched): only in Locust processes

    try:
        conn = postgres.connect(postgres.default_dsn())
    except Exception as exc:
        raise FeederError(f"data.{name}.sql: cannot connect to PostgreSQL: {exc}") from None
    try:
        # Read-only, timed and streamed: a feeder query can change nothing, cannot stall the
        # master, and brings at most MAX_ROWS + 1 rows into memory (a server-side cursor).
        conn.autocommit = False
        conn.set_session(readonly=True)
        with conn.cursor() as setup:
            setup.execute("SET LOCAL statement_timeout = %s", (f"{SQL_TIMEOUT_S}s",))
        with conn.cursor(name="loadstack_feeder") as cur:
            cur.itersize = 10_000
            cur.execute(query)
            fetched = cur.fetchmany(MAX_ROWS + 1)
            columns = [d.name for d in cur.description or ()]
            rows = [{c: _plain(v) for c, v in zip(columns, r, strict=True)} for r in fetched]
            rows = _bounded(f"data.{name}.sql", rows, "add a LIMIT")
        conn.rollback()
    except FeederError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not re.match(r"\s*(select|with|values|table)\b", query, re.IGNORECASE):
            first += " (a feeder reads rows with a SELECT; it changes nothing)"
        raise FeederError(f"data.{name}.sql: {first}") from None
    finally:
        conn.close()
    if not rows:
        raise FeederError(f"data.{name}.sql: the query returned no rows")
    return rows


@dataclass
class Pool:
    """Master side: one feeder's rows and who holds which."""

    rows: list[Row]
    mode: str
    recycle: bool
    rng: random.Random = field(default_factory=lambda: random.Random(1234))
    free: deque[int] = field(default_factory=deque)
    used: list[int] = field(default_factory=list)  # unique + recycle: the next round
    held: Counter[str] = field(default_factory=Counter)
    handed: int = 0
    rounds: int = 1

    def __post_init__(self) -> None:
        self.free.extend(range(len(self.rows)))

    @property
    def outstanding(self) -> int:
        return sum(self.held.values())

    @property
    def exhausted(self) -> bool:
        """A ``unique`` feeder that will never hand out another row."""
        return self.mode == "unique" and not self.recycle and not self.free

    def lease(self, client: str, want: int) -> list[int]:
        if not self.free and self.mode == "unique" and self.recycle and self.used:
            self.free.extend(self.used)  # a new round: every row once more
            self.used.clear()
            self.rounds += 1
        out: list[int] = []
        while self.free and len(out) < want:
            if self.mode == "random":
                i = self.rng.randrange(len(self.free))
                self.free[i], self.free[-1] = self.free[-1], self.free[i]
                out.append(self.free.pop())
            else:
                out.append(self.free.popleft())
        self.held[client] += len(out)
        self.handed += len(out)
        return out

    def give_back(self, client: str, used: list[int], unused: list[int]) -> None:
        self.held[client] -= len(used) + len(unused)
        self.handed -= len(unused)
        self.free.extendleft(reversed(unused))  # never used: next in line again
        if self.mode != "unique":
            self.free.extend(used)
        elif self.recycle:
            self.used.extend(used)


class Distributor:
    """Master side: every feeder of the run."""

    def __init__(self, sources: dict[str, DataSource], rows: dict[str, list[Row]]) -> None:
        self.pools = {
            name: Pool(rows[name], source.mode, source.on_exhausted == "recycle")
            for name, source in sources.items()
        }

    def lease(self, payload: dict[str, Any], client: str) -> dict[str, Any]:
        self.give_back(payload, client)
        pool = self.pools[payload["feeder"]]
        ids = pool.lease(client, int(payload.get("want", 1)))
        return {
            "rows": [[i, pool.rows[i]] for i in ids],
            "exhausted": pool.exhausted and not ids,
            "feeder": payload["feeder"],
        }

    def give_back(self, payload: dict[str, Any], client: str) -> dict[str, Any]:
        for name, (used, unused) in (payload.get("back") or {}).items():
            if name in self.pools:
                self.pools[name].give_back(client, list(used), list(unused))
        return {}

    def used_up(self) -> list[str]:
        """``unique`` feeders (``on_exhausted: stop``) whose every row was used and given back."""
        return [name for name, p in self.pools.items() if p.exhausted and p.outstanding == 0]

    def section(self) -> dict[str, Any]:
        return {
            name: {"rows": len(p.rows), "mode": p.mode, "handed_out": p.handed, "rounds": p.rounds}
            for name, p in sorted(self.pools.items())
        }


@dataclass
class _Stock:
    rows: deque[tuple[int, Row]] = field(default_factory=deque)
    used: list[int] = field(default_factory=list)
    unused: list[int] = field(default_factory=list)
    waiting: int = 0
    exhausted: bool = False
    asking: Event | None = None


class Feeders:
    """Worker (or local runner) side: rows for this process's users."""

    def __init__(self, client: Client, sources: dict[str, DataSource]) -> None:
        self.client = client
        self.stock = {name: _Stock() for name in sources}
        client.on_late(KIND_LEASE, self._late_rows)

    def _late_rows(self, reply: dict[str, Any]) -> None:
        """Rows leased after their ask timed out: still ours, so no row is held by nobody."""
        s = self.stock.get(reply.get("feeder", ""))
        if s is not None:
            s.rows.extend((i, row) for i, row in reply.get("rows") or ())

    def take(self, name: str) -> tuple[int, Row]:
        """A row for one iteration; blocks while every row is held; :class:`DataExhausted` when none is left."""
        if name not in self.stock:
            raise KeyError(f"no data feeder {name!r} in this run's profile (data: {', '.join(self.stock)})")
        s = self.stock[name]
        s.waiting += 1
        try:
            while not s.rows:
                if s.exhausted:
                    raise DataExhausted(f"data feeder {name!r} has no rows left")
                if s.asking is not None:
                    s.asking.wait(5)
                    continue
                s.asking = Event()
                try:
                    reply = self.client.ask(
                        KIND_LEASE, {"feeder": name, "want": s.waiting, "back": self._back()}
                    )
                    s.rows.extend((i, row) for i, row in reply["rows"])
                    s.exhausted = bool(reply["exhausted"])
                except (TimeoutError, RuntimeError):
                    gevent.sleep(1)
                finally:
                    s.asking.set()
                    s.asking = None
                if not s.rows and not s.exhausted:
                    gevent.sleep(POLL_S)
            return s.rows.popleft()
        finally:
            s.waiting -= 1

    def give(self, name: str, row_id: int) -> None:
        """The holder's iteration is over: the row may go to someone else."""
        s = self.stock[name]
        s.used.append(row_id)
        if s.exhausted:
            self.flush()  # the last rows: the master's view of the end must not wait

    def give_back(self) -> None:
        """Users are stopping: rows nobody took go back to the master."""
        for s in self.stock.values():
            s.unused.extend(i for i, _ in s.rows)
            s.rows.clear()
        self.flush()

    def flush(self) -> None:
        back = self._back()
        if back:
            self.client.tell(KIND_RETURN, {"back": back})

    def _back(self) -> dict[str, list[list[int]]]:
        out = {}
        for name, s in self.stock.items():
            if s.used or s.unused:
                out[name] = [s.used, s.unused]
                s.used, s.unused = [], []
        return out


_current: Feeders | None = None


def install(feeders: Feeders | None) -> None:
    global _current
    _current = feeders


def _feeders(name: str) -> Feeders:
    if _current is None:
        raise RuntimeError(f"no data feeders in this run (the profile has no `data:`; wanted {name!r})")
    return _current


def take(name: str) -> tuple[int, Row]:
    """A row of feeder ``name`` and its id, held until :func:`give` (what chains use)."""
    return _feeders(name).take(name)


def give(name: str, row_id: int) -> None:
    _feeders(name).give(name, row_id)


@contextmanager
def row(name: str) -> Iterator[Row]:
    """``with data.row("accounts") as account:`` a row nobody else holds until the block ends."""
    row_id, values = take(name)
    try:
        yield dict(values)
    finally:
        give(name, row_id)
