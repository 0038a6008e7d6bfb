"""The frames of one read reach the store as one unit, not one unit per frame,
and a RECEIPT in the middle of a read still waits for its own frame's write."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ferrymq.store.base import AddMessage, Record
from ferrymq.testing import ThreadedBroker
from ferrymq.testing.wire import WireClient

BODY = b"y" * 512
COUNT = 200


def test_one_read_of_sends_is_few_store_appends(tmp_path: Path) -> None:
    with ThreadedBroker(store="journal", data=str(tmp_path)) as b:
        assert b.server is not None
        store = b.server.broker.store
        appends: list[int] = []
        original = store.append

        def counting(records: Sequence[Record]) -> None:
            adds = sum(1 for r in records if type(r) is AddMessage)
            if adds:
                appends.append(adds)
            original(records)

        b.call(lambda: setattr(store, "append", counting))
        producer = WireClient(b.stomp_port, timeout=30)
        producer.connect()
        frames = [
            ("SEND", BODY, {"destination": "/queue/batched", "persistent": "true", "n": str(i)})
            for i in range(COUNT)
        ]
        # A receipt half-way: its frame and those before it must be flushed first.
        frames[99][2]["receipt"] = "half"
        frames[-1][2]["receipt"] = "all"
        producer.send_many(frames)
        assert producer.frame().headers["receipt-id"] == "half"
        assert producer.frame().headers["receipt-id"] == "all"
        assert sum(appends) == COUNT
        # One write of 200 frames arrives in a few reads: per frame it was 200.
        assert len(appends) <= 20, appends

        consumer = WireClient(b.stomp_port, timeout=10)
        consumer.connect()
        consumer.send("SUBSCRIBE", destination="/queue/batched", id="s", ack="auto")
        assert [consumer.frame().headers["n"] for _ in range(COUNT)] == [
            str(i) for i in range(COUNT)
        ]
        producer.close()
        consumer.close()
