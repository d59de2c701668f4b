"""PostgreSQL, RabbitMQ and Redis users together — the ``backends`` profile's locustfile."""

from postgres_users import PoolSaturationUser, ShopDatabaseUser
from rabbitmq_users import OrderEventsUser
from redis_users import CacheUser

__all__ = ["CacheUser", "OrderEventsUser", "PoolSaturationUser", "ShopDatabaseUser"]
