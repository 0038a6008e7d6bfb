"""STOMP's spelling of destinations, as ActiveMQ clients use it.

A client names its own temporary destinations `/temp-queue/NAME`; everyone
else reaches them as `/remote-temp-queue/REALNAME`, which is what a
`reply-to` header is rewritten to on the way through.
"""

from __future__ import annotations

from ferrymq.core import ClientConnection, Destination, DestinationKind

__all__ = ["StompNames"]

_REMOTE = {
    "/remote-temp-queue/": DestinationKind.TEMP_QUEUE,
    "/remote-temp-topic/": DestinationKind.TEMP_TOPIC,
}
_REMOTE_PREFIX = {kind: prefix for prefix, kind in _REMOTE.items()}


class StompNames:
    """Translates destination headers for one connection, with a small cache."""

    __slots__ = ("_conn", "_local_prefix", "_parsed", "_rendered")

    def __init__(self, conn: ClientConnection) -> None:
        self._conn = conn
        self._local_prefix = f"{conn.id}."
        self._parsed: dict[str, Destination] = {}
        self._rendered: dict[Destination, str] = {}

    def parse(self, text: str) -> Destination:
        """A destination header to a core destination; raises InvalidDestination."""
        dest = self._parsed.get(text)
        if dest is not None:
            return dest
        for prefix, kind in _REMOTE.items():
            if text.startswith(prefix):
                dest = Destination.of(kind, text[len(prefix) :])
                break
        else:
            dest = Destination.parse(text)
            if dest.kind.is_temporary:
                dest = self._conn.broker.temp_destination(self._conn, dest.kind, dest.name)
        if len(self._parsed) < 1024:
            self._parsed[text] = dest
        return dest

    def render(self, dest: Destination) -> str:
        """A core destination as this client should see it."""
        text = self._rendered.get(dest)
        if text is None:
            if not dest.kind.is_temporary:
                text = str(dest)
            elif dest.name.startswith(self._local_prefix):
                text = f"/{dest.kind.value}/{dest.name[len(self._local_prefix) :]}"
            else:
                text = f"{_REMOTE_PREFIX[dest.kind]}{dest.name}"
            if len(self._rendered) < 1024:
                self._rendered[dest] = text
        return text

    def global_name(self, text: str) -> str:
        """A `reply-to` naming our own temp destination, as others must address it."""
        if text.startswith("/temp-queue/") or text.startswith("/temp-topic/"):
            dest = self.parse(text)
            return f"{_REMOTE_PREFIX[dest.kind]}{dest.name}"
        return text
