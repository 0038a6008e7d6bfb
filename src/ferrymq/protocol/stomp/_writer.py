"""Frame serialisation: a pure function from a Frame to the bytes on the wire."""

from __future__ import annotations

from collections.abc import Callable

from ._commands import RAW_HEADER_COMMANDS
from ._headers import ESCAPERS, escape_raw_name, escape_raw_value
from .events import Frame

__all__ = ["HEARTBEAT_BYTES", "serialize_frame"]

# A heart-beat is one EOL between frames; LF is the shortest and every
# version accepts it.
HEARTBEAT_BYTES = b"\n"

_CONTENT_LENGTH = "content-length"
_RAW_ESCAPERS: tuple[Callable[[str], str], Callable[[str], str]] = (
    escape_raw_name,
    escape_raw_value,
)


def serialize_frame(frame: Frame, version: str) -> bytes:
    """Encode `frame` for a peer speaking STOMP `version` (one of SUPPORTED_VERSIONS).

    Writes ``COMMAND\\n``, one ``name:value\\n`` per header escaped for the
    version (never for CONNECT, STOMP and CONNECTED), a blank line, the body
    and a NUL, always with LF line endings. `frame` is not modified.

    ``content-length`` always tells the truth: it is added when the body is
    not empty and the frame has none, and a content-length the frame does
    carry is rewritten to ``len(body)`` (a stale one, e.g. copied from a SEND
    whose body was changed, would desynchronise the peer's parser).

    Characters a version cannot carry never break the framing: in 1.0 and in
    the CONNECT family a CR or LF (and a colon in a name) is written as its
    1.2 escape, and a NUL in a header, which no version can carry, is dropped.
    Raises ValueError for an unsupported version.
    """
    escapers = ESCAPERS.get(version)
    if escapers is None:
        raise ValueError(f"unsupported STOMP version {version!r}")
    command = frame.command
    headers = frame.headers
    body = frame.body
    if _CONTENT_LENGTH in headers:
        headers = {**headers, _CONTENT_LENGTH: str(len(body))}
        length_line = "\n"
    else:
        length_line = f"content-length:{len(body)}\n\n" if body else "\n"
    names = "".join(headers)
    probe = names + "".join(headers.values())
    if "\n" in probe or "\0" in probe:
        head = _head_per_header(command, headers, escapers) + length_line
    else:
        # Escape the whole header block at once (a few C-level replaces)
        # rather than each name and value in Python. NUL stands in for the
        # name/value colon while escaping: the probe shows it occurs nowhere.
        text = "".join([f"{name}\0{value}\n" for name, value in headers.items()])
        if command in RAW_HEADER_COMMANDS or version == "1.0":
            # No escapes defined: only a CR (cannot end a line raw) or a
            # colon in a name (would end the name) needs the 1.2 spelling.
            if ":" in names:
                text = "".join([f"{escape_raw_name(n)}\0{v}\n" for n, v in headers.items()])
            if "\r" in probe:
                text = text.replace("\r", "\\r")
        else:
            if "\\" in probe:
                text = text.replace("\\", "\\\\")
            if ":" in probe:
                text = text.replace(":", "\\c")
            if version != "1.1" and "\r" in probe:
                text = text.replace("\r", "\\r")
        head = f"{command}\n{text.replace(chr(0), ':')}{length_line}"
    return b"".join((head.encode(), body, b"\0"))


def _head_per_header(
    command: str,
    headers: dict[str, str],
    escapers: tuple[Callable[[str], str], Callable[[str], str]],
) -> str:
    """Escape name by name: for the rare headers holding LF or NUL."""
    escape_name, escape_value = _RAW_ESCAPERS if command in RAW_HEADER_COMMANDS else escapers
    # NUL ends a frame for peers that have no content-length to go by.
    lines = [
        f"{escape_name(name)}:{escape_value(value)}\n".replace("\0", "")
        for name, value in headers.items()
    ]
    return f"{command}\n{''.join(lines)}"
