"""dedup-id and in-doubt COMMIT resolution over real STOMP."""

from __future__ import annotations

from ferrymq.testing import ThreadedBroker
from ferrymq.testing.wire import WireClient


def test_dedup_id_and_amq_alias_over_stomp() -> None:
    with ThreadedBroker() as b:
        c = WireClient(b.stomp_port)
        c.connect()
        for header, n in (("dedup-id", 3), ("_AMQ_DUPL_ID", 2)):
            for i in range(n):
                c.send(
                    "SEND", b"%d" % i, destination="/queue/d", receipt=f"r{i}", **{header: "one"}
                )
                # A duplicate is acknowledged like any send, just not enqueued again.
                assert c.frame().headers["receipt-id"] == f"r{i}"
        c.send("SUBSCRIBE", destination="/queue/d", id="s")
        c.send("SEND", b"end", destination="/queue/d", receipt="end")
        bodies = []
        while True:
            frame = c.frame()
            if frame.command == "RECEIPT":
                continue
            bodies.append(frame.body)
            if frame.body == b"end":
                break
        assert bodies == [b"0", b"end"]  # "one" under both names is one id
        c.close()


def test_commit_resolution_answers_committed_or_unknown() -> None:
    with ThreadedBroker() as b:
        c = WireClient(b.stomp_port)
        c.connect()
        c.send("BEGIN", transaction="tx-a")
        c.send("SEND", b"x", destination="/queue/t", transaction="tx-a")
        c.send("COMMIT", transaction="tx-a", receipt="c1")
        assert c.frame().headers["ferrymq-tx-outcome"] == "committed"
        c.close()

        # A new connection (as after a failover) asks about both.
        c = WireClient(b.stomp_port)
        c.connect()
        c.send("COMMIT", transaction="tx-a", receipt="q1", **{"ferrymq-resolve": "true"})
        frame = c.frame()
        assert (frame.command, frame.headers["ferrymq-tx-outcome"]) == ("RECEIPT", "committed")
        c.send("COMMIT", transaction="tx-b", receipt="q2", **{"ferrymq-resolve": "true"})
        frame = c.frame()
        assert (frame.command, frame.headers["ferrymq-tx-outcome"]) == ("RECEIPT", "unknown")
        c.close()
