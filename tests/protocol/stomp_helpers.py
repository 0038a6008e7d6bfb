"""Shared helpers and Hypothesis strategies for the STOMP codec tests."""

from __future__ import annotations

from hypothesis import strategies as st

from ferrymq.protocol.stomp import Event, Frame, Limits, StompParser, serialize_frame

ALL_COMMANDS = (
    "CONNECT",
    "STOMP",
    "SEND",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "ACK",
    "NACK",
    "BEGIN",
    "COMMIT",
    "ABORT",
    "DISCONNECT",
    "CONNECTED",
    "MESSAGE",
    "RECEIPT",
    "ERROR",
)
RAW_COMMANDS = ("CONNECT", "STOMP", "CONNECTED")
ESCAPED_COMMANDS = tuple(c for c in ALL_COMMANDS if c not in RAW_COMMANDS)


def parse(data: bytes, *, version: str = "1.2", limits: Limits | None = None) -> list[Event]:
    """Feed `data` in one call to a fresh parser."""
    parser = StompParser(version=version, limits=limits or Limits())
    return parser.feed(data)


def parse_in_chunks(
    data: bytes, cuts: list[int], *, version: str = "1.2", limits: Limits | None = None
) -> list[Event]:
    """Feed `data` cut at the (sorted, deduplicated) offsets in `cuts`."""
    parser = StompParser(version=version, limits=limits or Limits())
    events: list[Event] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        events += parser.feed(data[start:cut])
        start = cut
    return events


def bytewise(data: bytes, *, version: str = "1.2", limits: Limits | None = None) -> list[Event]:
    """Feed `data` one byte at a time."""
    return parse_in_chunks(data, list(range(len(data))), version=version, limits=limits)


# Text without NUL (no STOMP version can put it in a header) and without lone
# surrogates (UTF-8 cannot carry them): ASCII and Latin, plus a few 3- and
# 4-byte UTF-8 characters; a small alphabet keeps generation fast.
_CHARS = st.characters(min_codepoint=1, max_codepoint=0x17F) | st.sampled_from(
    ["€", "日", "\U0001f600", "\ufeff"]
)
# Bias towards the characters escaping is about.
_SPECIAL = st.sampled_from(["\\", "\n", "\r", ":", "\\n", "\\c", "é", "€"])
_TEXT = st.lists(st.one_of(_CHARS, _SPECIAL), max_size=12).map("".join)


_RAW_FORBIDDEN = str.maketrans("", "", "\n\r:")
_NO_LINE_BREAKS = str.maketrans("", "", "\n\r")


def _carryable(pairs: list[tuple[str, str]], version: str, raw: bool) -> dict[str, str]:
    """Headers `version` can carry exactly, made from arbitrary text pairs.

    Cleaning the text (rather than filtering draws) keeps generation fast.
    """
    headers: dict[str, str] = {}
    for name, value in pairs:
        if raw:
            # 1.0 and the CONNECT family cannot carry LF, CR or ':' in a name,
            # nor LF or CR in a value (the writer would use their 1.2 spelling).
            name = name.translate(_RAW_FORBIDDEN)
            value = value.translate(_NO_LINE_BREAKS)
        elif version == "1.1":
            # 1.1 has no \r escape: a CR ending a value reads as a CRLF.
            value = value.rstrip("\r")
        if name and name != "content-length":
            headers.setdefault(name, value)
    return headers


@st.composite
def frames(draw: st.DrawFn, version: str, commands: tuple[str, ...] = ALL_COMMANDS) -> Frame:
    """A frame that `version` can carry exactly (the serializer's output parses back)."""
    command = draw(st.sampled_from(commands))
    raw = version == "1.0" or command in RAW_COMMANDS
    pairs = draw(st.lists(st.tuples(_TEXT, _TEXT), max_size=5))
    body = draw(st.binary(max_size=64) | st.sampled_from([b"", b"\0", b"a\0b\0", b"\n\n"]))
    return Frame(command=command, headers=_carryable(pairs, version, raw), body=body)


def expected_after_round_trip(frame: Frame) -> Frame:
    """`frame` as the parser returns it: plus the content-length the writer adds."""
    headers = dict(frame.headers)
    if frame.body:
        headers["content-length"] = str(len(frame.body))
    return Frame(command=frame.command, headers=headers, body=frame.body)


def wire(*frames_: Frame, version: str = "1.2") -> bytes:
    """Serialize several frames into one byte stream."""
    return b"".join(serialize_frame(f, version) for f in frames_)
