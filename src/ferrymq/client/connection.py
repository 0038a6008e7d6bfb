"""One client-side STOMP connection as a sans-IO state machine.

It builds the CONNECT frame, reads CONNECTED to learn the version and the
heart-beat intervals, turns bytes into frames and frames into bytes, and
answers "is a heart-beat due?" and "has the broker gone silent?" for a time
the caller passes in. The asyncio link (`_link.py`) does the I/O around it;
the codec is `ferrymq.protocol.stomp`, unchanged.
"""

from __future__ import annotations

import enum

from ferrymq.client.errors import BrokerError
from ferrymq.protocol.stomp import (
    HEARTBEAT_BYTES,
    Frame,
    ProtocolViolation,
    StompParser,
    serialize_frame,
)

__all__ = ["ConnState", "ProtocolError", "StompConnection"]

ACCEPT_VERSION = "1.0,1.1,1.2"
# A broker silent for this many of its promised heart-beat intervals is
# taken for dead. Two, not one: one late beat on a busy machine is no
# failure, a connection torn down for it would be a needless failover.
SILENCE_GRACE = 2.0


class ProtocolError(Exception):
    """The broker sent something that is not valid STOMP."""


class ConnState(enum.Enum):
    CONNECTING = "connecting"  # CONNECT written, CONNECTED awaited
    CONNECTED = "connected"
    CLOSED = "closed"  # ERROR or garbage received: read nothing more


class StompConnection:
    """CONNECT, frames both ways, heart-beat accounting; no sockets, no clock."""

    def __init__(
        self,
        *,
        host: str,
        login: str | None = None,
        passcode: str | None = None,
        client_id: str | None = None,
        heartbeat: tuple[int, int] = (10_000, 10_000),
    ) -> None:
        self._parser = StompParser(version="1.0")
        self.state = ConnState.CONNECTING
        self.version = "1.0"
        self.server = ""
        self._heartbeat = heartbeat
        headers = {"accept-version": ACCEPT_VERSION, "host": host}
        if login is not None:
            headers["login"] = login
        if passcode is not None:
            headers["passcode"] = passcode
        if client_id is not None:
            headers["client-id"] = client_id
        headers["heart-beat"] = f"{heartbeat[0]},{heartbeat[1]}"
        self._connect = Frame(command="CONNECT", headers=headers)
        # Seconds; 0 disables that direction (negotiated on CONNECTED).
        self.send_interval = 0.0
        self.receive_interval = 0.0
        self.last_received = 0.0
        self.last_sent = 0.0

    def connect_bytes(self, now: float) -> bytes:
        self.last_sent = now
        self.last_received = now
        # CONNECT headers are never escaped, so any version serialises it.
        return serialize_frame(self._connect, "1.0")

    def frame_bytes(self, frame: Frame, now: float) -> bytes:
        self.last_sent = now
        return serialize_frame(frame, self.version)

    def heartbeat_bytes(self, now: float) -> bytes:
        self.last_sent = now
        return HEARTBEAT_BYTES

    def receive_data(self, data: bytes, now: float) -> list[Frame]:
        """Frames the bytes complete. The first frame must be CONNECTED.

        Raises BrokerError for an ERROR before CONNECTED (CONNECT refused)
        and ProtocolError for garbage; heart-beats only refresh the clock.
        """
        self.last_received = now
        frames: list[Frame] = []
        for event in self._parser.feed(data):
            if isinstance(event, Frame):
                if self.state is ConnState.CONNECTING:
                    self._on_first_frame(event)
                    continue
                frames.append(event)
                if event.command == "ERROR":
                    # STOMP: the server closes after ERROR; nothing follows.
                    self.state = ConnState.CLOSED
            elif isinstance(event, ProtocolViolation):
                self.state = ConnState.CLOSED
                raise ProtocolError(event.message)
        return frames

    def _on_first_frame(self, frame: Frame) -> None:
        if frame.command == "ERROR":
            self.state = ConnState.CLOSED
            raise BrokerError(
                frame.headers.get("message", "CONNECT refused"),
                frame.body.decode(errors="replace").strip(),
            )
        if frame.command != "CONNECTED":
            self.state = ConnState.CLOSED
            raise ProtocolError(f"expected CONNECTED, got {frame.command}")
        self.state = ConnState.CONNECTED
        self.version = frame.headers.get("version", "1.0")
        self._parser.version = self.version
        self.server = frame.headers.get("server", "")
        self.send_interval, self.receive_interval = negotiate_heartbeat(
            self._heartbeat, frame.headers.get("heart-beat", "0,0")
        )

    def heartbeat_due(self, now: float) -> bool:
        return self.send_interval > 0 and now - self.last_sent >= self.send_interval

    def peer_silent(self, now: float) -> bool:
        """The broker has said nothing for longer than it promised."""
        return (
            self.receive_interval > 0
            and now - self.last_received > self.receive_interval * SILENCE_GRACE
        )


def negotiate_heartbeat(ours: tuple[int, int], theirs: str) -> tuple[float, float]:
    """(our send interval, the broker's send interval) in seconds, per STOMP 1.1.

    `ours` is what CONNECT offered (cx, cy); `theirs` the CONNECTED header
    (sx, sy). We beat every max(cx, sy) ms unless either is 0; the broker
    beats every max(sx, cy) ms unless either is 0. A malformed header
    disables heart-beats rather than failing the connection.
    """
    cx, cy = ours
    try:
        sx_text, sy_text = theirs.split(",")
        sx, sy = int(sx_text), int(sy_text)
    except ValueError:
        return 0.0, 0.0
    send = max(cx, sy) / 1000 if cx and sy else 0.0
    receive = max(sx, cy) / 1000 if sx and cy else 0.0
    return send, receive
