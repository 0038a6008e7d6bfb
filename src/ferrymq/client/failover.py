"""The failover bookkeeping: what must be replayed on the next connection.

No I/O, no asyncio: the asyncio client calls these methods as frames come
and links die, and writes what they return. Three ledgers:

- subscriptions, by id: replayed with the same id, destination, ack mode
  and headers;
- sends not yet confirmed by RECEIPT, in the order the application made
  them: rewritten in that order, each with its original `dedup-id`;
- transactions: one still open when its link dies is lost (the broker aborts
  it); one whose COMMIT went out without an answer is in doubt, and is
  resolved on the next link by asking the broker (`ferrymq-resolve`).

`W` is whatever the caller uses to wake a waiter (an asyncio Future); this
module only stores it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ferrymq.protocol.stomp import Frame

__all__ = [
    "OUTCOME_HEADER",
    "RESOLVE_HEADER",
    "FailoverBook",
    "LinkLost",
    "PendingSend",
    "SubscriptionSpec",
    "TxRecord",
    "TxState",
    "commit_outcome",
    "resolve_frame",
]

W = TypeVar("W")

# The in-doubt COMMIT protocol agreed with the broker (issue 4): a COMMIT
# carrying RESOLVE_HEADER asks "did this transaction commit?"; the RECEIPT
# answers in OUTCOME_HEADER.
RESOLVE_HEADER = "ferrymq-resolve"
OUTCOME_HEADER = "ferrymq-tx-outcome"
COMMITTED = "committed"


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """Everything needed to SUBSCRIBE again exactly as the application did."""

    id: str
    destination: str
    ack: str
    headers: tuple[tuple[str, str], ...] = ()

    def frame(self) -> Frame:
        headers = dict(self.headers)
        headers.update({"id": self.id, "destination": self.destination, "ack": self.ack})
        return Frame(command="SUBSCRIBE", headers=headers)


@dataclass(slots=True, eq=False)
class PendingSend(Generic[W]):
    """A SEND waiting for its RECEIPT."""

    receipt: str
    frame: Frame
    waiter: W
    # Written on the current link (cleared when the link dies).
    written: bool = False
    # Written on some link at least once: the broker may hold a copy.
    ever_written: bool = False
    # The caller's timer for the `timeout` option, if armed.
    timer: Any = None

    @property
    def dedup_id(self) -> str:
        return self.frame.headers.get("dedup-id", "")


class TxState(enum.Enum):
    OPEN = "open"  # BEGIN written on the current link
    COMMITTING = "committing"  # COMMIT written, RECEIPT awaited
    IN_DOUBT = "in-doubt"  # COMMIT written, link died before the answer
    LOST = "lost"  # link died before COMMIT: rolled back by the broker


@dataclass(slots=True, eq=False)
class TxRecord(Generic[W]):
    id: str
    generation: int
    state: TxState = TxState.OPEN
    waiter: W | None = None
    timer: Any = None


@dataclass(slots=True)
class LinkLost(Generic[W]):
    """What a dead link leaves behind, for the caller to act on."""

    in_doubt: list[TxRecord[W]] = field(default_factory=list)
    lost: list[TxRecord[W]] = field(default_factory=list)
    unconfirmed: list[PendingSend[W]] = field(default_factory=list)


def resolve_frame(tx_id: str, receipt: str) -> Frame:
    """The COMMIT that asks the broker how an in-doubt transaction ended."""
    return Frame(
        command="COMMIT",
        headers={"transaction": tx_id, RESOLVE_HEADER: "true", "receipt": receipt},
    )


def commit_outcome(answer: Frame) -> bool:
    """True when the broker's answer to a resolve COMMIT says "committed".

    `unknown`, a RECEIPT without the header, and an ERROR (a broker that does
    not know the header finds no such transaction) all mean rolled back:
    the broker holds nothing of the transaction.
    """
    return answer.command == "RECEIPT" and answer.headers.get(OUTCOME_HEADER) == COMMITTED


class FailoverBook(Generic[W]):
    """Subscriptions, unconfirmed sends and transactions of one client."""

    def __init__(self) -> None:
        self.subscriptions: dict[str, SubscriptionSpec] = {}
        # Insertion order is send order: the replay keeps it.
        self.sends: dict[str, PendingSend[W]] = {}
        self.transactions: dict[str, TxRecord[W]] = {}
        # Which link we are on; 0 before the first one.
        self.generation = 0

    # -- subscriptions ------------------------------------------------------

    def subscribe(self, spec: SubscriptionSpec) -> None:
        if spec.id in self.subscriptions:
            raise ValueError(f"subscription id {spec.id!r} is already in use")
        self.subscriptions[spec.id] = spec

    def unsubscribe(self, sub_id: str) -> SubscriptionSpec | None:
        return self.subscriptions.pop(sub_id, None)

    # -- sends ----------------------------------------------------------------

    def add_send(self, receipt: str, frame: Frame, waiter: W) -> PendingSend[W]:
        entry = PendingSend(receipt, frame, waiter)
        self.sends[receipt] = entry
        return entry

    def mark_written(self, entry: PendingSend[W]) -> None:
        entry.written = True
        entry.ever_written = True

    def confirm(self, receipt: str) -> PendingSend[W] | None:
        """The RECEIPT for `receipt` arrived; the entry, if it was a send."""
        return self.sends.pop(receipt, None)

    def drop(self, entry: PendingSend[W]) -> bool:
        """Forget a send (refused, timed out); False if it was already gone."""
        return self.sends.pop(entry.receipt, None) is not None

    # -- transactions -----------------------------------------------------------

    def begin(self, tx_id: str) -> TxRecord[W]:
        record: TxRecord[W] = TxRecord(tx_id, self.generation)
        self.transactions[tx_id] = record
        return record

    def usable(self, record: TxRecord[W]) -> bool:
        """The transaction is open on the current link."""
        return record.state is TxState.OPEN and record.generation == self.generation

    def committing(self, record: TxRecord[W], waiter: W) -> None:
        record.state = TxState.COMMITTING
        record.waiter = waiter

    def finish(self, record: TxRecord[W]) -> None:
        self.transactions.pop(record.id, None)

    def in_doubt(self) -> list[TxRecord[W]]:
        return [t for t in self.transactions.values() if t.state is TxState.IN_DOUBT]

    # -- links --------------------------------------------------------------------

    def link_up(self) -> int:
        """A new link is connected; returns its generation."""
        self.generation += 1
        return self.generation

    def link_lost(self) -> LinkLost[W]:
        """The current link died: sort what it leaves behind.

        Open transactions are lost (removed; the caller reports them when the
        application next touches them), COMMITs without answer become in
        doubt, and every unconfirmed send is to be written again.
        """
        result: LinkLost[W] = LinkLost()
        for record in list(self.transactions.values()):
            if record.state is TxState.COMMITTING:
                record.state = TxState.IN_DOUBT
                result.in_doubt.append(record)
            elif record.state is TxState.OPEN:
                record.state = TxState.LOST
                self.transactions.pop(record.id)
                result.lost.append(record)
        for entry in self.sends.values():
            entry.written = False
            result.unconfirmed.append(entry)
        return result

    def replay(self) -> tuple[list[Frame], list[PendingSend[W]]]:
        """The SUBSCRIBEs, then the sends to write, in order, on a new link."""
        return [spec.frame() for spec in self.subscriptions.values()], list(self.sends.values())

    def __iter__(self) -> Iterator[PendingSend[W]]:
        return iter(self.sends.values())
