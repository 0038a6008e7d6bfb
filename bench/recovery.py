"""Recovery time and broker RSS with a million queued persistent messages.

Run: .venv/bin/python bench/recovery.py [--messages N] [--size BYTES] [--dir DIR]

1. Fills a data directory through the broker core in-process (the same journal
   records a STOMP SEND writes; no network, so filling is quick).
2. Starts a real `ferrymq serve --data DIR` process and reports how long it
   took to recover and listen, its RSS once listening (VmRSS) and its peak
   (VmHWM), then consumes a sample over STOMP to show the messages are there.
Prints one JSON line. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ferrymq.core import Broker, Destination
from ferrymq.store.journal_store import JournalStore
from ferrymq.testing import BrokerProcess
from ferrymq.testing.wire import WireClient

QUEUE = "/queue/recovery"


async def fill(data: Path, count: int, size: int) -> float:
    broker = Broker(JournalStore(data, sync="never"), node_name="fill")
    await broker.start()
    producer = broker.connect(_NoSink())
    destination = Destination.parse(QUEUE)
    body = b"x" * size
    started = time.perf_counter()
    for i in range(count):
        producer.send(destination, {"seq": str(i)}, body, persistent=True)
        if i % 10_000 == 9_999:  # let the writer catch up: bounded pending payloads
            fut = broker.store.durable()
            if fut is not None:
                await fut
    await broker.stop()
    return time.perf_counter() - started


class _NoSink:
    def deliver(self, consumer: object, message: object) -> None:
        raise AssertionError("nobody subscribes while filling")


def proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--sample", type=int, default=10_000, help="messages to consume")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="ferrymq-recovery-"))
    data = root / "data"
    try:
        fill_s = asyncio.run(fill(data, args.messages, args.size))
        disk = sum(p.stat().st_size for p in (data / "journal").iterdir())
        started = time.perf_counter()
        with BrokerProcess(["--data", str(data), "--stomp", "127.0.0.1:0", "--http", "off"]) as b:
            ready_s = time.perf_counter() - started
            assert b.proc is not None
            status = proc_status(b.proc.pid)
            logged = next(
                (m for line in b.output if (m := re.search(r"messages, .* in ([\d.]+) s", line))),
                None,
            )
            client = WireClient(b.stomp_port, timeout=30)
            client.connect()
            client.send("SUBSCRIBE", destination=QUEUE, id="s", ack="auto")
            consume_started = time.perf_counter()
            for i in range(args.sample):
                frame = client.frame()
                if frame.headers.get("seq") != str(i):
                    raise SystemExit(f"message {i} out of order: {frame.headers}")
            consume_s = time.perf_counter() - consume_started
            client.close()
            after = proc_status(b.proc.pid)
        print(
            json.dumps(
                {
                    "messages": args.messages,
                    "size": args.size,
                    "journal_bytes": disk,
                    "fill_s": round(fill_s, 1),
                    "recovery_s_logged": float(logged.group(1)) if logged else None,
                    "start_to_listening_s": round(ready_s, 2),
                    "rss_mib_listening": round(status["VmRSS"] / 2**20, 1),
                    "rss_mib_peak_at_listening": round(status["VmHWM"] / 2**20, 1),
                    "rss_mib_after_sample": round(after["VmRSS"] / 2**20, 1),
                    "sample_consumed": args.sample,
                    "sample_msgs_per_s": round(args.sample / consume_s),
                }
            )
        )
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
