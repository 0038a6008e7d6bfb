"""STOMP protocol versions and the negotiation of one from ``accept-version``."""

from __future__ import annotations

__all__ = ["SUPPORTED_VERSIONS", "negotiate_version"]

# Oldest first: negotiation picks the last common one.
SUPPORTED_VERSIONS: tuple[str, ...] = ("1.0", "1.1", "1.2")


def negotiate_version(accept_version: str | None) -> str | None:
    """Return the highest version both sides speak, or None if there is none.

    `accept_version` is the raw value of the CONNECT/STOMP ``accept-version``
    header (comma-separated, e.g. ``"1.0,1.1,1.2"``). A client that sends no
    such header speaks STOMP 1.0 (spec 1.2, "Protocol Negotiation"). Blanks
    around the commas are tolerated; unknown versions are ignored.
    """
    if accept_version is None:
        return "1.0"
    offered = {item.strip() for item in accept_version.split(",")}
    for version in reversed(SUPPORTED_VERSIONS):
        if version in offered:
            return version
    return None
