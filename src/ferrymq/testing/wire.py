"""A minimal blocking STOMP client over a plain socket, for tests that need
exact control of what is sent and when (crash tests, bad input)."""

from __future__ import annotations

import socket
from collections import deque

from ferrymq.protocol.stomp import Frame, StompParser, serialize_frame

__all__ = ["WireClient"]


class WireClient:
    def __init__(self, port: int, *, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.parser = StompParser(version="1.2")
        self.pending: deque[Frame] = deque()

    def connect(self, **headers: str) -> Frame:
        self.send_many(
            [("CONNECT", b"", {"accept-version": "1.2", "host": "localhost", **headers})]
        )
        frame = self.frame()
        if frame.command != "CONNECTED":
            raise ConnectionError(f"CONNECT refused: {frame.headers.get('message')}")
        return frame

    def send(self, command: str, body: bytes = b"", **headers: str) -> None:
        self.send_many([(command, body, headers)])

    def send_many(self, frames: list[tuple[str, bytes, dict[str, str]]]) -> None:
        data = b"".join(
            serialize_frame(
                Frame(
                    command=c,
                    # content_type -> content-type; names with capitals as given
                    headers={k.replace("_", "-") if k.islower() else k: v for k, v in h.items()},
                    body=b,
                ),
                "1.2",
            )
            for c, b, h in frames
        )
        self.sock.sendall(data)

    def frame(self) -> Frame:
        """The next frame; ConnectionError when the broker closed the socket."""
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed by broker")
            self.pending.extend(e for e in self.parser.feed(data) if isinstance(e, Frame))
        return self.pending.popleft()

    def close(self) -> None:
        self.sock.close()
