"""Locustfile that contributes the profile's load shape (stages / breakpoint)."""

from loadstack.shape import ProfileShape

__all__ = ["ProfileShape"]
