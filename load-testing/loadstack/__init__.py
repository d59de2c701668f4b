"""loadstack: Locust-based load testing for a whole service platform."""

__version__ = "0.1.0"
