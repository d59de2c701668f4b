"""Locust users for every protocol loadstack drives, one module per protocol.

Import the one you need, e.g. ``from loadstack.users.websocket import WebSocketUser``;
importing this package does not pull in every client library.

It does install loadstack's Locust plugin (:mod:`loadstack.plugin`): a
locustfile that uses loadstack users carries the run's meaning (gates,
summary, exit status, seed and teardown) however Locust is started.
"""

from loadstack import plugin

plugin.install()
