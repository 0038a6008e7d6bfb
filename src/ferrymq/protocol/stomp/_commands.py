"""The STOMP command set, as data the parser and the writer look up."""

from __future__ import annotations

__all__ = ["CLIENT_COMMANDS", "COMMANDS", "RAW_HEADER_COMMANDS", "SERVER_COMMANDS"]

CLIENT_COMMANDS: frozenset[str] = frozenset(
    {
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
    }
)
SERVER_COMMANDS: frozenset[str] = frozenset({"CONNECTED", "MESSAGE", "RECEIPT", "ERROR"})

# The parser accepts both sides' commands: it does not know its role (h11's
# rule), the session rejects a command that makes no sense in its state.
COMMANDS: frozenset[str] = CLIENT_COMMANDS | SERVER_COMMANDS

# Frames whose headers are never escaped: they are exchanged before the
# version is known, so 1.1/1.2 keep them 1.0-compatible (spec 1.2, "Value
# Encoding"). STOMP is CONNECT under another name.
RAW_HEADER_COMMANDS: frozenset[str] = frozenset({"CONNECT", "STOMP", "CONNECTED"})
