"""Where the demo platform keeps its data, behind one small interface.

The HTTP layer only talks to :class:`Store`.  :class:`MemoryStore` keeps
everything in process memory (the HTTP-only smoke path); the backend store
(PostgreSQL + RabbitMQ + Redis) implements the same methods.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass
class UserRecord:
    id: int
    email: str
    name: str
    password_hash: str
    run_id: str | None = None


@dataclass
class Order:
    id: int
    owner_id: int
    sku: str
    quantity: int
    amount: float
    currency: str
    status: str = "created"
    run_id: str | None = None
    created_at: float = field(default_factory=time.time)

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("owner_id")
        return data


@dataclass
class Payment:
    id: int
    owner_id: int
    order_id: int | None
    amount: float
    currency: str
    method: str
    status: str = "captured"
    run_id: str | None = None
    created_at: float = field(default_factory=time.time)

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("owner_id")
        return data


class Store(Protocol):
    """The storage operations the demo platform needs."""

    kind: str

    def create_user(self, email: str, name: str, password_hash: str, run_id: str | None) -> UserRecord | None:
        """Create a user; ``None`` if the email is taken."""

    def get_user_by_email(self, email: str) -> UserRecord | None: ...

    def create_order(
        self, owner_id: int, sku: str, quantity: int, amount: float, currency: str, run_id: str | None
    ) -> Order: ...

    def list_orders(self, owner_id: int, limit: int) -> list[Order]: ...

    def get_order(self, owner_id: int, order_id: int) -> Order | None: ...

    def create_payment(
        self,
        owner_id: int,
        order_id: int | None,
        amount: float,
        currency: str,
        method: str,
        run_id: str | None,
    ) -> Payment: ...

    def list_payments(self, owner_id: int, limit: int) -> list[Payment]: ...

    def counts(self) -> dict[str, int]: ...

    def close(self) -> None: ...


class MemoryStore:
    """Process-local storage; fine for one server process and the smoke path."""

    kind = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._user_ids, self._order_ids, self._payment_ids = (itertools.count(1) for _ in range(3))
        self._users: dict[str, UserRecord] = {}
        self._orders: dict[int, Order] = {}
        self._orders_by_owner: dict[int, list[int]] = {}
        self._payments: dict[int, Payment] = {}
        self._payments_by_owner: dict[int, list[int]] = {}

    def create_user(self, email: str, name: str, password_hash: str, run_id: str | None) -> UserRecord | None:
        with self._lock:
            if email in self._users:
                return None
            user = UserRecord(next(self._user_ids), email, name, password_hash, run_id)
            self._users[email] = user
            return user

    def get_user_by_email(self, email: str) -> UserRecord | None:
        return self._users.get(email)

    def create_order(
        self, owner_id: int, sku: str, quantity: int, amount: float, currency: str, run_id: str | None
    ) -> Order:
        with self._lock:
            order = Order(next(self._order_ids), owner_id, sku, quantity, amount, currency, run_id=run_id)
            self._orders[order.id] = order
            self._orders_by_owner.setdefault(owner_id, []).append(order.id)
            return order

    def list_orders(self, owner_id: int, limit: int) -> list[Order]:
        ids = self._orders_by_owner.get(owner_id, [])[-limit:]
        return [self._orders[i] for i in reversed(ids)]

    def get_order(self, owner_id: int, order_id: int) -> Order | None:
        order = self._orders.get(order_id)
        return order if order and order.owner_id == owner_id else None

    def create_payment(
        self,
        owner_id: int,
        order_id: int | None,
        amount: float,
        currency: str,
        method: str,
        run_id: str | None,
    ) -> Payment:
        with self._lock:
            payment = Payment(
                next(self._payment_ids), owner_id, order_id, amount, currency, method, run_id=run_id
            )
            self._payments[payment.id] = payment
            self._payments_by_owner.setdefault(owner_id, []).append(payment.id)
            return payment

    def list_payments(self, owner_id: int, limit: int) -> list[Payment]:
        ids = self._payments_by_owner.get(owner_id, [])[-limit:]
        return [self._payments[i] for i in reversed(ids)]

    def counts(self) -> dict[str, int]:
        return {"users": len(self._users), "orders": len(self._orders), "payments": len(self._payments)}

    def close(self) -> None:
        pass
