"""HTTP and WebSocket users together — the default mix of the built-in profiles.

The HTTP share and the WebSocket share come from ``LOADSTACK_HTTP_WEIGHT`` and
``LOADSTACK_WS_WEIGHT`` (default 70 / 30).  Inside the HTTP share the classes
keep their relative weights.  A profile's ``user_classes`` can set weights too;
these environment variables win over it because each class names its
variable in ``weight_env``.
"""

from __future__ import annotations

import os

from http_users import AuthUser, OrderUser, OscilloscopeUser, PaymentUser
from websocket_users import StreamUser

HTTP_WEIGHT = float(os.environ.get("LOADSTACK_HTTP_WEIGHT", "70"))
WS_WEIGHT = float(os.environ.get("LOADSTACK_WS_WEIGHT", "30"))
# Relative shares inside the HTTP group.
HTTP_SHARES = {AuthUser: 3, OrderUser: 4, PaymentUser: 2, OscilloscopeUser: 1}


def _apply_weights() -> None:
    # In a function: a module-level loop variable would itself look like a User class to Locust.
    for cls, share in HTTP_SHARES.items():
        cls.weight = HTTP_WEIGHT * share / sum(HTTP_SHARES.values())
        cls.weight_env = "LOADSTACK_HTTP_WEIGHT"
    StreamUser.weight = WS_WEIGHT
    StreamUser.weight_env = "LOADSTACK_WS_WEIGHT"


_apply_weights()

__all__ = ["AuthUser", "OrderUser", "OscilloscopeUser", "PaymentUser", "StreamUser"]
