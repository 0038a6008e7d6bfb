"""Remembered ids: broker-side duplicate detection and committed transactions.

A producer that resends after a failover gives each message the same
`dedup-id`; the broker keeps the last N ids accepted per destination (like
Artemis' duplicate id cache) and drops a resend it has seen. The same window,
under its own scope, keeps the ids of recently committed transactions, so a
client whose COMMIT was in flight at a failover can ask whether it happened.
The store persists every remembered id with the operation that accepted it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

__all__ = ["TRANSACTIONS_SCOPE", "IdWindow"]

# Scope of committed transaction ids; destinations always start with "/queue"
# or "/topic", so this cannot clash with one.
TRANSACTIONS_SCOPE = "#transactions"


class IdWindow:
    """The last `size` ids per scope, oldest evicted first."""

    __slots__ = ("_scopes", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"the id window must hold at least one id, got {size}")
        self.size = size
        self._scopes: dict[str, OrderedDict[str, None]] = {}

    def __contains__(self, item: tuple[str, str]) -> bool:
        scope, ident = item
        ids = self._scopes.get(scope)
        return ids is not None and ident in ids

    def remember(self, scope: str, ident: str) -> str | None:
        """Add an id not yet in the scope; returns the id it evicted, if any."""
        ids = self._scopes.get(scope)
        if ids is None:
            ids = self._scopes[scope] = OrderedDict()
        ids[ident] = None
        if len(ids) > self.size:
            return ids.popitem(last=False)[0]
        return None

    def load(self, scope: str, idents: Iterable[str]) -> list[str]:
        """Restore a scope, oldest first; returns ids beyond the window (to forget)."""
        evicted = []
        for ident in idents:
            if (scope, ident) in self:
                continue
            old = self.remember(scope, ident)
            if old is not None:
                evicted.append(old)
        return evicted

    def forget_scope(self, scope: str) -> list[str]:
        return list(self._scopes.pop(scope, ()))

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._scopes.values())
