"""Header value encoding: the escape sequences of STOMP 1.1 and 1.2.

STOMP 1.0 has no escapes: a backslash is an ordinary byte. 1.1 defines
``\\\\`` ``\\n`` ``\\c``; 1.2 adds ``\\r``. Any other sequence after a
backslash is a fatal protocol error (spec 1.2, "Value Encoding").

The functions here work on ``str`` (headers are UTF-8 text) and are only
called when the caller already knows a backslash or special character is
present: the common header needs no work at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = [
    "ESCAPERS",
    "UNESCAPE_TABLES",
    "EscapeError",
    "escape_11",
    "escape_12",
    "escape_raw_name",
    "escape_raw_value",
    "unescape",
]


class EscapeError(ValueError):
    """A header holds a backslash sequence the version does not define."""


_UNESCAPE_11: Mapping[str, str] = {"\\": "\\", "n": "\n", "c": ":"}
_UNESCAPE_12: Mapping[str, str] = {**_UNESCAPE_11, "r": "\r"}

# None: the version does not unescape at all.
UNESCAPE_TABLES: Mapping[str, Mapping[str, str] | None] = {
    "1.0": None,
    "1.1": _UNESCAPE_11,
    "1.2": _UNESCAPE_12,
}


def unescape(text: str, table: Mapping[str, str]) -> str:
    """Decode the escape sequences in `text`; raise EscapeError on a bad one.

    Splitting on the backslash does the scanning in C: after the split, an
    empty piece means the backslash was itself escaped (``\\\\``), and every
    other piece starts with the escaped character.
    """
    if "\\" not in text:
        return text
    pieces = text.split("\\")
    out = [pieces[0]]
    i = 1
    last = len(pieces) - 1
    while i <= last:
        piece = pieces[i]
        if not piece:
            if i == last:
                raise EscapeError("header ends with an unfinished escape (a lone backslash)")
            # "\\\\": a literal backslash; the next piece is plain text.
            out.append("\\")
            out.append(pieces[i + 1])
            i += 2
            continue
        decoded = table.get(piece[0])
        if decoded is None:
            char = piece[0] if piece[0].isprintable() else repr(piece[0])
            raise EscapeError(f"undefined escape sequence \\{char} in header")
        out.append(decoded)
        out.append(piece[1:])
        i += 1
    return "".join(out)


def escape_12(text: str) -> str:
    """Encode `text` for a STOMP 1.2 header (backslash first, so it is not doubled)."""
    if "\\" in text or "\n" in text or ":" in text or "\r" in text:
        return (
            text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n").replace(":", "\\c")
        )
    return text


def escape_11(text: str) -> str:
    """Encode `text` for a STOMP 1.1 header.

    1.1 has no ``\\r``: a carriage return is sent raw. It survives inside a
    value, but one at the very end would read as a CRLF line ending.
    """
    if "\\" in text or "\n" in text or ":" in text:
        return text.replace("\\", "\\\\").replace("\n", "\\n").replace(":", "\\c")
    return text


def escape_raw_value(text: str) -> str:
    """Encode a value for 1.0 and for CONNECT/STOMP/CONNECTED (no escaping defined).

    Backslashes and colons go out as they are. A CR or LF cannot be sent raw
    without breaking the framing (and letting the value inject headers), so
    it is written as the 1.2 sequence: a 1.0 peer sees the two characters
    literally, which is safe and still readable.
    """
    if "\n" in text or "\r" in text:
        return text.replace("\r", "\\r").replace("\n", "\\n")
    return text


def escape_raw_name(text: str) -> str:
    """Like escape_raw_value, and a colon too: in a name it would end the name."""
    if "\n" in text or "\r" in text or ":" in text:
        return text.replace("\r", "\\r").replace("\n", "\\n").replace(":", "\\c")
    return text


# Per version: (escape a name, escape a value).
ESCAPERS: Mapping[str, tuple[Callable[[str], str], Callable[[str], str]]] = {
    "1.0": (escape_raw_name, escape_raw_value),
    "1.1": (escape_11, escape_11),
    "1.2": (escape_12, escape_12),
}
