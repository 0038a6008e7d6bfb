"""When the writer calls fsync: the `sync` setting (`always`, `interval:<ms>`, `never`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["SyncPolicy"]

SyncMode = Literal["always", "interval", "never"]


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    """How durable a resolved `durable()` future is.

    - ``always``: the future resolves after write + fsync (the default: an
      acknowledged message survives power loss).
    - ``interval:<ms>``: resolves after the write; the writer fsyncs at most
      every ``ms`` milliseconds, and at the latest ``ms`` after a write.
      A power loss can lose up to that much acknowledged data; a process
      crash loses nothing (the data is in the page cache).
    - ``never``: resolves after the write; fsync only when a segment is sealed,
      before segments are deleted, and at close.
    """

    mode: SyncMode
    interval_ms: int = 0

    def __post_init__(self) -> None:
        if self.mode == "interval":
            if self.interval_ms <= 0:
                raise ValueError(
                    f"sync interval must be a positive ms count, not {self.interval_ms}"
                )
        elif self.mode in ("always", "never"):
            if self.interval_ms != 0:
                raise ValueError(f"sync policy {self.mode!r} takes no interval")
        else:
            raise ValueError(f"unknown sync mode {self.mode!r}")

    @staticmethod
    def parse(text: str) -> SyncPolicy:
        """Parse ``always``, ``never`` or ``interval:<ms>`` (e.g. ``interval:100``)."""
        value = text.strip().lower()
        if value == "always":
            return SyncPolicy("always")
        if value == "never":
            return SyncPolicy("never")
        if value.startswith("interval:"):
            raw = value.removeprefix("interval:").strip()
            if not raw.isdigit() or int(raw) <= 0:
                raise ValueError(
                    f"bad sync policy {text!r}: interval needs a positive whole number of"
                    " milliseconds, e.g. 'interval:100'"
                )
            return SyncPolicy("interval", int(raw))
        raise ValueError(f"bad sync policy {text!r}: expected 'always', 'never' or 'interval:<ms>'")

    @property
    def interval_s(self) -> float:
        return self.interval_ms / 1000.0

    def __str__(self) -> str:
        return f"interval:{self.interval_ms}" if self.mode == "interval" else self.mode
