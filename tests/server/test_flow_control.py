"""Producer flow control: over the memory budget the broker stops reading
producers instead of growing, and lets them go once consumers catch up."""

from __future__ import annotations

import threading
from pathlib import Path

from ferrymq.core.message import MESSAGE_OVERHEAD
from ferrymq.testing import ThreadedBroker, eventually
from ferrymq.testing.wire import WireClient

BUDGET = 200_000
COUNT = 3000
BODY = b"x" * 1024


def test_producer_blocked_over_budget_then_resumed() -> None:
    with ThreadedBroker(memory_budget=BUDGET) as b:
        assert b.server is not None
        core = b.server.broker
        producer = WireClient(b.stomp_port, timeout=30)
        producer.connect()
        done = threading.Event()

        def produce() -> None:
            for _ in range(COUNT // 100):
                producer.send_many([("SEND", BODY, {"destination": "/queue/flow"})] * 100)
            producer.send("SEND", b"", destination="/queue/other", receipt="last")
            assert producer.frame().headers["receipt-id"] == "last"
            done.set()

        thread = threading.Thread(target=produce)
        thread.start()
        eventually(lambda: b.call(lambda: bool(b.server and b.server.ctx.blocked_producers)))
        held = b.call(lambda: core.memory.used)
        # One socket read (at most 256 KiB, ~250 messages at a 2 KiB footprint
        # each) may land past the budget, never more.
        assert BUDGET <= held <= BUDGET + 600_000
        assert not done.is_set()

        consumer = WireClient(b.stomp_port, timeout=10)
        consumer.connect()
        consumer.send("SUBSCRIBE", destination="/queue/flow", id="s", ack="auto")
        got = 0
        while got < COUNT:
            frame = consumer.frame()
            assert frame.command == "MESSAGE" and frame.body == BODY
            got += 1
        thread.join(30)
        assert done.is_set()
        # Only the empty message left in /queue/other is held: its overhead.
        assert b.call(lambda: core.memory.used) == MESSAGE_OVERHEAD
        producer.close()
        consumer.close()


def test_persistent_producer_is_paged_not_blocked(tmp_path: Path) -> None:
    """Persistent messages beyond the budget go to the journal only: the
    producer keeps going, memory stays near the budget, nothing is lost."""
    count = 2000
    with ThreadedBroker(memory_budget=BUDGET, store="journal", data=str(tmp_path)) as b:
        assert b.server is not None
        core = b.server.broker
        producer = WireClient(b.stomp_port, timeout=30)
        producer.connect()
        for start in range(0, count, 100):
            producer.send_many(
                [
                    (
                        "SEND",
                        BODY,
                        {"destination": "/queue/paged", "persistent": "true", "n": str(i)},
                    )
                    for i in range(start, start + 100)
                ]
            )
        producer.send("SEND", b"", destination="/queue/other", receipt="last")
        assert producer.frame().headers["receipt-id"] == "last"
        assert not b.call(lambda: bool(b.server and b.server.ctx.blocked_producers))
        assert b.call(lambda: core.memory.used) <= BUDGET + 600_000

        consumer = WireClient(b.stomp_port, timeout=10)
        consumer.connect()
        consumer.send("SUBSCRIBE", destination="/queue/paged", id="s", ack="auto")
        for i in range(count):
            frame = consumer.frame()
            assert frame.command == "MESSAGE" and frame.body == BODY
            assert frame.headers["n"] == str(i)
        producer.close()
        consumer.close()
