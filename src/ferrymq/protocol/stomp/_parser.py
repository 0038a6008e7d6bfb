"""The incremental STOMP frame parser: bytes in, events out.

`StompParser.feed` takes whatever one socket read produced and returns every
event it completes, in order. It does no I/O and knows nothing of the broker
or of its role (client or server): the session above it decides what a frame
means.

How it stays fast (this is the broker's hot path; one `feed` per read, often
thousands of frames per call):

* the input is searched with `bytes.find` (memchr-speed C), never walked a
  byte at a time in Python, except for the EOLs between frames;
* every search is bounded by the current frame: the first NUL after a frame's
  start is found first, and the header block must end before it (a header
  cannot contain NUL), so a frame costs time in proportion to its own size
  however many frames follow it in the buffer;
* a whole header block is decoded from UTF-8 in one call and split in one
  call; headers without a backslash skip unescaping, headers without a CR
  skip the CR stripping, and headers without repeats are built by one
  `dict()` call;
* bytes that do not complete a frame are kept in one bytearray; a frame whose
  body is still arriving is resumed from where the last search stopped, so a
  large frame trickling in costs linear, not quadratic, time;
* bodies are sliced out of the immutable input, one copy each (a read that
  continues a buffered partial frame costs one more copy of the buffer).

After a ProtocolViolation the parser is dead: it drops its buffer and every
later `feed` returns []. The session is expected to send ERROR and close.
"""

from __future__ import annotations

from collections.abc import Mapping

from ._commands import COMMANDS, RAW_HEADER_COMMANDS
from ._headers import UNESCAPE_TABLES, EscapeError, unescape
from ._versions import SUPPORTED_VERSIONS, negotiate_version
from .events import Event, Frame, HeartBeat, ProtocolViolation
from .limits import DEFAULT_LIMITS, Limits

__all__ = ["StompParser"]

# HeartBeat has no fields: one shared instance saves an allocation per EOL.
_HEARTBEAT = HeartBeat()
_LF = 10
_CR = 13
_NUL = 0


class _Violation(Exception):
    """Internal: unwinds the parse loop; `feed` turns it into ProtocolViolation."""

    def __init__(self, message: str, detail: str = "", receipt: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.receipt = receipt


class _Pending:
    """A frame whose headers are parsed and whose body is still arriving."""

    __slots__ = ("body_start", "command", "headers", "length")

    def __init__(self, command: str, headers: dict[str, str], body_start: int, length: int):
        self.command = command
        self.headers = headers
        # Offset of the body in the parser's buffer (the frame starts at 0).
        self.body_start = body_start
        # The content-length, or -1 when the body runs to the first NUL.
        self.length = length


class StompParser:
    """Turns the bytes a STOMP peer sends into Frame / HeartBeat / ProtocolViolation.

    `version` selects the header escaping applied to incoming frames. The
    session may set it (to a SUPPORTED_VERSIONS value), and the parser sets
    it itself on the frames that negotiate it: on CONNECT/STOMP to the
    version negotiated from ``accept-version`` (unchanged if there is no
    common one), on CONNECTED to the ``version`` header (1.0 if absent,
    unchanged if unsupported). Doing it here, not in the session, matters
    because a client may send CONNECT and SEND in one packet, and the SEND
    must be read with the negotiated escaping.

    Each EOL (LF or CRLF) between frames yields one HeartBeat: the count then
    does not depend on how the stream was cut into reads.
    """

    __slots__ = (
        "_buf",
        "_dead",
        "_limits",
        "_line_end",
        "_lines",
        "_pending",
        "_scan",
        "_table",
        "_version",
    )

    def __init__(self, *, limits: Limits = DEFAULT_LIMITS, version: str = "1.0") -> None:
        self._limits = limits
        self._version = "1.0"
        self._table: Mapping[str, str] | None = None
        self.version = version
        # Bytes of the one frame not complete yet (it starts at offset 0).
        self._buf = bytearray()
        self._dead = False
        self._pending: _Pending | None = None
        # Where the next search in _buf resumes: nothing of interest before.
        self._scan = 0
        # For a header block still arriving: complete lines checked so far
        # and the offset just past the last of them.
        self._lines = 0
        self._line_end = 0

    @property
    def version(self) -> str:
        """The STOMP version whose escaping applies to incoming frames."""
        return self._version

    @version.setter
    def version(self, value: str) -> None:
        if value not in SUPPORTED_VERSIONS:
            raise ValueError(f"unsupported STOMP version {value!r}")
        self._version = value
        self._table = UNESCAPE_TABLES[value]

    @property
    def dead(self) -> bool:
        """True once a ProtocolViolation was returned: `feed` yields nothing more."""
        return self._dead

    def feed(self, data: bytes) -> list[Event]:
        """Parse everything `data` completes; return the events in order.

        Bytes of an incomplete frame are kept for the next call. A
        ProtocolViolation, if any, is the last event; the parser is dead
        afterwards. No input makes this raise.
        """
        if self._dead or not data:
            return []
        events: list[Event] = []
        buf = self._buf
        try:
            if buf:
                buf += data
                if self._pending is not None:
                    if not self._finish_pending(buf, events):
                        return events
                elif not self._header_may_end(buf):
                    return events
                work = bytes(buf)
                buf.clear()
            else:
                work = data if type(data) is bytes else bytes(data)
            pos = self._parse(work, events)
            if pos < len(work):
                buf += memoryview(work)[pos:]
        except _Violation as violation:
            self._die()
            events.append(
                ProtocolViolation(
                    message=violation.message,
                    detail=violation.detail,
                    receipt=violation.receipt,
                )
            )
        except Exception as exc:  # a parser bug, never the peer's fault
            # Whatever the bytes, the broker must not crash: report, stop parsing.
            self._die()
            events.append(
                ProtocolViolation(
                    message="internal parser error",
                    detail=f"{type(exc).__name__}: {exc}",
                )
            )
        return events

    def _die(self) -> None:
        self._dead = True
        self._pending = None
        self._buf = bytearray()

    # -- the main loop -------------------------------------------------------

    def _parse(self, b: bytes, events: list[Event]) -> int:
        """Parse frames from b[0:]; return the offset of the first byte not consumed."""
        limits = self._limits
        max_body = limits.max_body
        max_frame = limits.max_frame_size
        max_line = limits.max_header_line
        max_lines = limits.max_headers + 1  # the command line counts as a line
        append = events.append
        find = b.find
        n = len(b)
        pos = 0
        while pos < n:
            first = b[pos]
            if first == _LF:
                append(_HEARTBEAT)
                pos += 1
                continue
            if first == _CR:
                if pos + 1 == n:
                    # Maybe the CR of a CRLF heart-beat: keep it, wait for the LF.
                    self._scan = self._lines = self._line_end = 0
                    break
                if b[pos + 1] == _LF:
                    append(_HEARTBEAT)
                    pos += 2
                    continue
                # Otherwise a command line starting with CR: unknown command below.

            # Find the end of the header block: the first blank line, which
            # must come before the first NUL (the frame's end, or its body's).
            nul = find(b"\0", pos)
            bound = nul if nul >= 0 else n
            end = find(b"\n\n", pos, bound)
            if end >= 0:
                crlf = find(b"\n\r\n", pos, end)
                if crlf >= 0:
                    end = crlf
                    body_start = crlf + 3
                else:
                    body_start = end + 2
            else:
                end = find(b"\n\r\n", pos, bound)
                if end < 0:
                    if nul >= 0:
                        raise _Violation(
                            "frame ended (NUL) before the blank line that ends its headers",
                            receipt=_salvage_receipt(b[pos:nul]),
                        )
                    self._lines = self._line_end = 0
                    self._check_partial_header(b, pos, n)
                    self._scan = max(n - pos - 2, 0)
                    break
                body_start = end + 3

            # Decode the header block: one decode, one split for all lines.
            block = b[pos:end]
            try:
                text = block.decode()
            except UnicodeDecodeError as exc:
                raise _Violation(
                    "frame headers are not valid UTF-8",
                    detail=str(exc),
                    receipt=_salvage_receipt(block),
                ) from None
            lines = text.split("\n")
            if "\r" in text:
                lines = [line[:-1] if line[-1:] == "\r" else line for line in lines]
            command = lines[0]
            if command not in COMMANDS:
                raise _Violation(
                    f"unknown command: {_printable(command)}", receipt=_salvage_receipt(block)
                )
            if len(lines) > max_lines:
                raise _Violation(
                    f"too many headers (limit {limits.max_headers})",
                    detail=f"{command} frame with {len(lines) - 1} headers",
                    receipt=_salvage_receipt(block),
                )
            if end - pos > max_line:
                _check_line_lengths(block, max_line)
            if len(lines) == 1:
                headers = {}
            else:
                # Inlined: this runs once per frame on the hot path.
                pairs = [line.split(":", 1) for line in lines[1:]]
                table = self._table
                if table is not None and "\\" in text and command not in RAW_HEADER_COMMANDS:
                    headers = _unescaped_headers(pairs, table, lines)
                else:
                    try:
                        headers = dict(pairs)  # ValueError if a line has no ":"
                    except ValueError:
                        raise _missing_colon(lines) from None
                    if len(headers) != len(pairs):
                        headers = _first_wins(pairs)
                    if "" in headers:
                        raise _empty_name(headers)

            if command in RAW_HEADER_COMMANDS:
                self._negotiated(command, headers)

            # The body: content-length bytes, or up to the first NUL.
            length_text = headers.get("content-length")
            if length_text is None:
                if nul < 0:
                    self._wait_for_body(command, headers, pos, body_start, -1, n)
                    break
                if nul - body_start > max_body:
                    raise _body_too_large(nul - body_start, max_body, headers)
                if nul + 1 - pos > max_frame:
                    raise _frame_too_large(nul + 1 - pos, max_frame, headers)
                body = b[body_start:nul]
                pos = nul + 1
            else:
                if length_text.isdigit() and length_text.isascii() and len(length_text) < 19:
                    length = int(length_text)
                else:
                    raise _bad_content_length(length_text, headers)
                if length > max_body:
                    raise _body_too_large(length, max_body, headers)
                body_end = body_start + length
                if body_end + 1 - pos > max_frame:
                    raise _frame_too_large(body_end + 1 - pos, max_frame, headers)
                if body_end >= n:
                    self._wait_for_body(command, headers, pos, body_start, length, n)
                    break
                if b[body_end] != _NUL:
                    raise _not_terminated(length, headers)
                body = b[body_start:body_end]
                pos = body_end + 1
            append(Frame(command=command, headers=headers, body=body))
        return pos

    def _negotiated(self, command: str, headers: dict[str, str]) -> None:
        """Switch the escaping as the CONNECT/STOMP or CONNECTED frame negotiates."""
        if command == "CONNECTED":
            version = headers.get("version", "1.0")
            if version in SUPPORTED_VERSIONS:
                self.version = version
        else:
            self.version = negotiate_version(headers.get("accept-version")) or self._version

    # -- frames that span several feeds --------------------------------------

    def _wait_for_body(
        self,
        command: str,
        headers: dict[str, str],
        pos: int,
        body_start: int,
        length: int,
        n: int,
    ) -> None:
        """Remember a frame whose body is incomplete; offsets become buffer-relative."""
        if length < 0:
            self._check_unterminated_body(n - body_start, n - pos, headers)
        self._pending = _Pending(command, headers, body_start - pos, length)
        self._scan = n - pos

    def _finish_pending(self, buf: bytearray, events: list[Event]) -> bool:
        """Complete the pending frame from `buf` if its body is all there.

        Works on the bytearray itself, so a large body that arrives over
        many reads is neither searched nor copied more than once.
        """
        pending = self._pending
        assert pending is not None
        n = len(buf)
        if pending.length >= 0:
            body_end = pending.body_start + pending.length
            if body_end >= n:
                return False
            if buf[body_end] != _NUL:
                raise _not_terminated(pending.length, pending.headers)
        else:
            body_end = buf.find(b"\0", self._scan)
            if body_end < 0:
                self._check_unterminated_body(n - pending.body_start, n, pending.headers)
                self._scan = n
                return False
            body_size = body_end - pending.body_start
            if body_size > self._limits.max_body:
                raise _body_too_large(body_size, self._limits.max_body, pending.headers)
            if body_end + 1 > self._limits.max_frame_size:
                raise _frame_too_large(body_end + 1, self._limits.max_frame_size, pending.headers)
        with memoryview(buf) as view:
            body = view[pending.body_start : body_end].tobytes()
        del buf[: body_end + 1]
        events.append(Frame(command=pending.command, headers=pending.headers, body=body))
        self._pending = None
        self._scan = 0
        return True

    def _check_unterminated_body(
        self, body_size: int, frame_size: int, headers: dict[str, str]
    ) -> None:
        """Reject a NUL-terminated body as soon as it outgrows a limit unterminated."""
        if body_size > self._limits.max_body:
            raise _body_too_large(body_size, self._limits.max_body, headers, unterminated=True)
        if frame_size > self._limits.max_frame_size:
            raise _frame_too_large(frame_size, self._limits.max_frame_size, headers)

    def _header_may_end(self, buf: bytearray) -> bool:
        """Whether the buffered header block can now be parsed (or was a heart-beat).

        When not, check the limits on what has arrived so far and remember
        where to resume, so each byte of a trickled header is scanned once.
        """
        first = buf[0]
        if first == _LF or (first == _CR and (len(buf) == 1 or buf[1] == _LF)):
            return True  # a heart-beat (or half of one)
        scan = self._scan
        if buf.find(b"\n\n", scan) >= 0 or buf.find(b"\n\r\n", scan) >= 0:
            return True
        if buf.find(b"\0", scan) >= 0:
            return True
        n = len(buf)
        self._check_partial_header(buf, 0, n)
        self._scan = max(n - 2, 0)
        return False

    def _check_partial_header(self, b: bytes | bytearray, pos: int, n: int) -> None:
        """Apply the header limits to an unterminated header block b[pos:n].

        Resumes after the lines already checked (self._line_end), so the
        work is linear in the block however it is cut into reads.
        """
        limits = self._limits
        max_line = limits.max_header_line
        start = pos + self._line_end
        lines = self._lines
        while True:
            eol = b.find(b"\n", start, n)
            if eol < 0:
                break
            size = eol - start
            if size and b[eol - 1] == _CR:
                size -= 1
            if size > max_line:
                raise _line_too_long(max_line, b[pos:n])
            lines += 1
            start = eol + 1
        if lines > limits.max_headers + 1:
            raise _Violation(
                f"too many headers (limit {limits.max_headers})",
                receipt=_salvage_receipt(b[pos:n]),
            )
        tail = n - start
        if tail and b[n - 1] == _CR:
            tail -= 1
        if tail > max_line:
            raise _line_too_long(max_line, b[pos:n])
        if n - pos > limits.max_frame_size:
            raise _frame_too_large(n - pos, limits.max_frame_size, {})
        self._lines = lines
        self._line_end = start - pos


# -- helpers for the rarer paths ---------------------------------------------


def _unescaped_headers(
    pairs: list[list[str]], table: Mapping[str, str], lines: list[str]
) -> dict[str, str]:
    """Build headers from lines that contain backslashes (1.1/1.2 escaping)."""
    headers: dict[str, str] = {}
    for pair in pairs:
        if len(pair) != 2:
            raise _missing_colon(lines, table)
        try:
            name = unescape(pair[0], table)
            value = unescape(pair[1], table)
        except EscapeError as exc:
            receipt = headers.get("receipt") or _salvage_receipt("\n".join(lines).encode(), table)
            raise _Violation(str(exc), receipt=receipt) from None
        if not name:
            raise _empty_name(headers)
        headers.setdefault(name, value)
    return headers


def _first_wins(pairs: list[list[str]]) -> dict[str, str]:
    """Headers from pairs where a name repeats: the first occurrence wins.

    Spec 1.2, "Repeated Header Entries"; dict() would have kept the last.
    """
    headers: dict[str, str] = {}
    for name, value in pairs:
        headers.setdefault(name, value)
    return headers


def _bad_content_length(text: str, headers: dict[str, str]) -> _Violation:
    """The error for a content-length that is not a plain, sane decimal number.

    str.isdigit alone accepts non-ASCII digits ("²"), int() accepts "+1",
    " 1" and "1_0", and 19 digits or more exceed any body limit (and int()
    of a huge digit string is slow or refused).
    """
    receipt = headers.get("receipt")
    if text.isdigit() and text.isascii():
        return _Violation(f"content-length {_printable(text, 24)} is too large", receipt=receipt)
    return _Violation(
        f"invalid content-length: {_printable(text)}",
        detail="content-length must be a non-negative decimal integer",
        receipt=receipt,
    )


def _check_line_lengths(block: bytes, max_line: int) -> None:
    """Only called for header blocks longer than one line may be: rare."""
    for line in block.split(b"\n"):
        size = len(line) - (1 if line.endswith(b"\r") else 0)
        if size > max_line:
            raise _line_too_long(max_line, block)


def _salvage_receipt(
    block: bytes | bytearray, table: Mapping[str, str] | None = None
) -> str | None:
    """Best effort: the receipt header of a frame whose headers did not parse.

    Lets the ERROR carry receipt-id even for a frame we could not read, so a
    client waiting on that receipt learns why. Unescaped with `table` when
    given and possible, else taken raw.
    """
    start = block.find(b"\nreceipt:")
    if start < 0:
        return None
    start += len(b"\nreceipt:")
    end = block.find(b"\n", start)
    value = bytes(block[start:] if end < 0 else block[start:end])
    text = value.removesuffix(b"\r").decode(errors="replace")
    if table is not None:
        try:
            return unescape(text, table)
        except EscapeError:
            pass
    return text


def _printable(text: str, limit: int = 64) -> str:
    """Text for an ERROR message: short, and repr() if it has control characters."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return shown if shown.isprintable() else repr(shown)


def _missing_colon(lines: list[str], table: Mapping[str, str] | None = None) -> _Violation:
    bad = next((line for line in lines[1:] if ":" not in line), "")
    return _Violation(
        "header line without ':'",
        detail=f"bad header line: {_printable(bad)}",
        receipt=_salvage_receipt("\n".join(lines).encode(), table),
    )


def _empty_name(headers: dict[str, str]) -> _Violation:
    return _Violation("header with an empty name", receipt=headers.get("receipt"))


def _line_too_long(max_line: int, block: bytes | bytearray) -> _Violation:
    return _Violation(f"header line exceeds {max_line} bytes", receipt=_salvage_receipt(block))


def _body_too_large(
    size: int, limit: int, headers: dict[str, str], *, unterminated: bool = False
) -> _Violation:
    # For a body still missing its NUL, `size` is what arrived so far.
    return _Violation(
        f"body of {size} bytes exceeds limit {limit}",
        detail="no NUL yet; rejected before the rest arrived" if unterminated else "",
        receipt=headers.get("receipt"),
    )


def _frame_too_large(size: int, limit: int, headers: dict[str, str]) -> _Violation:
    return _Violation(
        f"frame exceeds max_frame_size {limit} ({size} bytes or more)",
        receipt=headers.get("receipt"),
    )


def _not_terminated(length: int, headers: dict[str, str]) -> _Violation:
    return _Violation(
        "frame body not terminated by NUL",
        detail=f"expected NUL after the {length} body bytes given by content-length",
        receipt=headers.get("receipt"),
    )
