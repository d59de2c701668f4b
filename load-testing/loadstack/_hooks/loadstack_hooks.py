"""Locustfile that installs loadstack's listeners; it defines no users.

Use it next to your own locustfile: ``locust -f <this file>,my_locustfile.py``.
"""

from loadstack import plugin

plugin.install()
