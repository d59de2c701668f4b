"""Locust users for every protocol loadstack drives, one module per protocol.

Import the one you need, e.g. ``from loadstack.users.websocket import WebSocketUser``;
importing this package does not pull in every client library.
"""
