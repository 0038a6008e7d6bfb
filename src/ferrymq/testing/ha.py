"""Two `ferrymq serve --ha shared-fs` processes on one directory, for tests
and benchmarks: fixed ports (so clients can list both), kill and restart."""

from __future__ import annotations

import socket
from pathlib import Path

from ferrymq.testing.brokers import BrokerProcess, eventually

__all__ = ["SharedFsPair", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class SharedFsPair:
    """Two nodes on one directory with fixed ports, so clients can list both."""

    def __init__(self, data: Path, *, poll_ms: int = 100) -> None:
        self.data = data
        self.poll_ms = poll_ms
        self.ports = [free_port(), free_port()]
        self.procs: list[BrokerProcess | None] = [None, None]

    def start(self, i: int) -> BrokerProcess:
        b = BrokerProcess(
            [
                "--ha",
                "shared-fs",
                "--data",
                str(self.data),
                "--node-name",
                f"node{i}",
                "--stomp",
                f"127.0.0.1:{self.ports[i]}",
                "--http",
                "off",
                "--lock-poll-interval",
                str(self.poll_ms),
            ],
            wait_master=False,
        ).start()
        self.procs[i] = b
        return b

    def master(self, timeout: float = 10.0) -> int:
        def find() -> int | None:
            for i, b in enumerate(self.procs):
                if b is not None and b.master.is_set() and b.proc and b.proc.poll() is None:
                    return i
            return None

        return (eventually(lambda: find() is not None, timeout=timeout) and find()) or 0

    def kill_master_and_restart_as_slave(self) -> None:
        i = self.master()
        b = self.procs[i]
        assert b is not None
        b.kill()
        self.start(i)

    def stop(self) -> None:
        for b in self.procs:
            if b is not None:
                b.kill()
