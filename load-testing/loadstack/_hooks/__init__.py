"""Locustfiles that plug loadstack into a Locust process (passed with ``-f``).

They live in their own directory because Locust puts a locustfile's
directory on ``sys.path`` while importing it.
"""
