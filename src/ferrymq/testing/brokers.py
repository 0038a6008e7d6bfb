"""Real brokers for tests: one in a background thread (its own event loop),
or one in a child process that can be killed for real."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

from ferrymq.config import Settings
from ferrymq.server.server import BrokerServer

__all__ = ["BrokerProcess", "ThreadedBroker", "eventually"]

T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float = 5.0, interval: float = 0.01) -> T:
    """Poll `check` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {check}")
        time.sleep(interval)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed, as `ferrymq serve` uses, else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return None
    return cast(Callable[[], asyncio.AbstractEventLoop], uvloop.new_event_loop)


class ThreadedBroker:
    """A BrokerServer on free loopback ports, run by an event loop in a thread.

    `with ThreadedBroker() as b: ... b.stomp_port ...`; `b.call(fn)` runs `fn`
    on the broker's loop and returns its result (for inspecting the core).
    """

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        base = settings or Settings(
            stomp="127.0.0.1:0", http="127.0.0.1:0", node_name="test", store="memory"
        )
        self.settings = dataclasses.replace(base, **overrides).validate()
        self.server: BrokerServer | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def stomp_port(self) -> int:
        assert self.server is not None and self.server.stomp_address is not None
        return self.server.stomp_address.port

    @property
    def http_port(self) -> int:
        assert self.server is not None and self.server.http_address is not None
        return self.server.http_address.port

    def start(self) -> ThreadedBroker:
        self._thread = threading.Thread(target=self._run, name="ferrymq-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("broker did not start within 10 s")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.server = BrokerServer(self.settings)
            try:
                await self.server.start()
            except BaseException as exc:
                self._error = exc
                self._started.set()
                return
            self._started.set()
            await self._stop.wait()
            await self.server.stop()

        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(main())

    def call(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run `fn()` on the broker's loop thread and return its result."""
        assert self.loop is not None

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and self._thread is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def __enter__(self) -> ThreadedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_READY = re.compile(r"stomp=(?P<host>[^\s]+):(?P<port>\d+) http=(?P<http>\S+)")
_SLAVE = re.compile(r"role=slave http=(?P<http>\S+) waiting")


class BrokerProcess:
    """`ferrymq serve` in a child process; `kill()` is a real SIGKILL."""

    def __init__(
        self,
        args: Sequence[str] = (),
        *,
        cwd: str | os.PathLike[str] | None = None,
        wait_master: bool = True,
    ):
        """``wait_master=False``: start() returns once the node is up as a slave
        or as master (with --ha); `wait_master()` then waits for the port."""
        self.args = list(args)
        self.wait_for_master = wait_master
        self.master = threading.Event()
        self.slave = threading.Event()
        self.cwd = Path(cwd) if cwd is not None else None
        self.proc: subprocess.Popen[str] | None = None
        self.stomp_port = 0
        self.http_port = 0
        self.output: list[str] = []

    def start(self, timeout: float = 20.0) -> BrokerProcess:
        cmd = [sys.executable, "-m", "ferrymq", "serve", *self.args]
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()
        self.exited = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                m = _READY.search(line)
                if m and not self.master.is_set():
                    self.stomp_port = int(m.group("port"))
                    http = m.group("http")
                    self.http_port = int(http.rsplit(":", 1)[1]) if http != "off" else 0
                    self.master.set()
                    ready.set()
                s = _SLAVE.search(line)
                if s and not self.slave.is_set():
                    http = s.group("http")
                    self.http_port = int(http.rsplit(":", 1)[1]) if http != "off" else 0
                    self.slave.set()
                    if not self.wait_for_master:
                        ready.set()
            self.proc.stdout.close()
            self.exited.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout) or not (self.master.is_set() or self.slave.is_set()):
            self.kill()
            raise RuntimeError("broker process did not start:\n" + "".join(self.output))
        return self

    def wait_master(self, timeout: float = 10.0) -> bool:
        """Wait until this node is master (its client port is open)."""
        return self.master.wait(timeout) and self.stomp_port > 0

    def terminate(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> BrokerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
