"""Errors shared across layers that are not about one client's request."""

from __future__ import annotations

__all__ = ["ConfigError", "FerrymqError"]


class FerrymqError(Exception):
    """Base class of ferrymq's own errors."""


class ConfigError(FerrymqError):
    """A setting is missing, malformed or out of range; the text says which."""
