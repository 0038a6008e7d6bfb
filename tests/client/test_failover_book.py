"""The failover bookkeeping, without sockets."""

from __future__ import annotations

import pytest

from ferrymq.client.failover import (
    FailoverBook,
    SubscriptionSpec,
    TxState,
    commit_outcome,
    resolve_frame,
)
from ferrymq.protocol.stomp import Frame


def send(n: int) -> Frame:
    return Frame(command="SEND", headers={"destination": "/queue/q", "dedup-id": f"d{n}"})


def test_replay_keeps_subscriptions_and_unconfirmed_sends_in_order() -> None:
    book: FailoverBook[str] = FailoverBook()
    book.subscribe(SubscriptionSpec("s1", "/queue/a", "client-individual", (("selector", "x"),)))
    book.subscribe(SubscriptionSpec("s2", "/topic/b", "auto"))
    entries = [book.add_send(f"r{n}", send(n), f"w{n}") for n in range(5)]
    for entry in entries:
        book.mark_written(entry)
    assert book.confirm("r1") is entries[1]
    assert book.confirm("r3") is entries[3]
    assert book.confirm("nope") is None
    lost = book.link_lost()
    assert lost.unconfirmed == [entries[0], entries[2], entries[4]]
    assert not any(e.written for e in lost.unconfirmed)
    assert all(e.ever_written for e in lost.unconfirmed)
    subscribes, sends = book.replay()
    assert [f.headers for f in subscribes] == [
        {"selector": "x", "id": "s1", "destination": "/queue/a", "ack": "client-individual"},
        {"id": "s2", "destination": "/topic/b", "ack": "auto"},
    ]
    assert [e.dedup_id for e in sends] == ["d0", "d2", "d4"]


def test_subscription_ids_are_unique() -> None:
    book: FailoverBook[str] = FailoverBook()
    book.subscribe(SubscriptionSpec("s", "/queue/a", "auto"))
    with pytest.raises(ValueError, match="already in use"):
        book.subscribe(SubscriptionSpec("s", "/queue/b", "auto"))
    assert book.unsubscribe("s") is not None
    assert book.replay() == ([], [])


def test_link_loss_loses_open_transactions_and_doubts_committing_ones() -> None:
    book: FailoverBook[str] = FailoverBook()
    book.link_up()
    open_tx = book.begin("t-open")
    committing = book.begin("t-commit")
    book.committing(committing, "waiter")
    assert book.usable(open_tx) and not book.usable(committing)
    lost = book.link_lost()
    assert lost.lost == [open_tx] and open_tx.state is TxState.LOST
    assert lost.in_doubt == [committing] and committing.state is TxState.IN_DOUBT
    assert book.in_doubt() == [committing]
    book.link_up()
    assert not book.usable(open_tx)
    # A transaction begun on an earlier link is not usable on this one.
    stale = book.begin("t-stale")
    book.link_lost()
    book.link_up()
    assert not book.usable(stale)


def test_resolve_frame_and_outcomes() -> None:
    frame = resolve_frame("tx-1", "r9")
    assert frame.command == "COMMIT"
    assert frame.headers == {"transaction": "tx-1", "ferrymq-resolve": "true", "receipt": "r9"}
    committed = Frame(command="RECEIPT", headers={"ferrymq-tx-outcome": "committed"})
    unknown = Frame(command="RECEIPT", headers={"ferrymq-tx-outcome": "unknown"})
    assert commit_outcome(committed)
    assert not commit_outcome(unknown)
    assert not commit_outcome(Frame(command="RECEIPT"))
    assert not commit_outcome(Frame(command="ERROR", headers={"message": "no such transaction"}))
