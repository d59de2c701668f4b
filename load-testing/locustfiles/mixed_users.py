"""HTTP and WebSocket users together — the default mix of the built-in profiles.

The HTTP share and the WebSocket share come from ``LOADSTACK_HTTP_WEIGHT`` and
``LOADSTACK_WS_WEIGHT`` (default 70 / 30).  Inside the HTTP share the classes
keep their relative weights.  A profile's ``user_classes`` can set weights too;
these environment variables win over it when they are set (each class says so
with ``weight_from_environment``).
"""

from __future__ import annotations

from http_users import AuthUser, OrderUser, OscilloscopeUser, PaymentUser
from websocket_users import StreamUser

from loadstack.settings import current

SETTINGS = current()
HTTP_WEIGHT = SETTINGS.http_weight if SETTINGS.http_weight is not None else 70.0
WS_WEIGHT = SETTINGS.ws_weight if SETTINGS.ws_weight is not None else 30.0
# Relative shares inside the HTTP group.
HTTP_SHARES = {AuthUser: 3, OrderUser: 4, PaymentUser: 2, OscilloscopeUser: 1}


def _apply_weights() -> None:
    # In a function: a module-level loop variable would itself look like a User class to Locust.
    for cls, share in HTTP_SHARES.items():
        cls.weight = HTTP_WEIGHT * share / sum(HTTP_SHARES.values())
        cls.weight_from_environment = SETTINGS.http_weight is not None
    StreamUser.weight = WS_WEIGHT
    StreamUser.weight_from_environment = SETTINGS.ws_weight is not None


_apply_weights()

__all__ = ["AuthUser", "OrderUser", "OscilloscopeUser", "PaymentUser", "StreamUser"]
