"""The whole platform at once: HTTP, WebSocket, PostgreSQL, RabbitMQ and Redis users plus chains.

The ``platform`` profile picks the classes and weights; chains come from its
``chains:`` section.
"""

from chain_users import ConfiguredChainUser
from http_users import AuthUser, OrderUser, OscilloscopeUser, PaymentUser
from postgres_users import ShopDatabaseUser
from rabbitmq_users import OrderEventsUser
from redis_users import CacheUser
from websocket_users import StreamUser

__all__ = [
    "AuthUser",
    "CacheUser",
    "ConfiguredChainUser",
    "OrderEventsUser",
    "OrderUser",
    "OscilloscopeUser",
    "PaymentUser",
    "ShopDatabaseUser",
    "StreamUser",
]
