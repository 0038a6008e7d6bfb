"""JMS message selectors: the SQL-92 subset a subscription filters with.

`Selector.compile(text)` tokenizes and parses the text (raising
`SelectorError` with the 1-based position of the problem), then compiles the
tree to nested closures over a `Message`; no user text is ever handed to
Python's `eval`. Identifiers are header names, plus the JMS names
JMSMessageID, JMSPriority, JMSTimestamp, JMSCorrelationID, JMSType and
JMSDeliveryMode (see `evaluate` for them and for the type conversions).
"""

from __future__ import annotations

from ferrymq.core.errors import SelectorError
from ferrymq.core.message import Message
from ferrymq.core.selector.ast import Node, Value
from ferrymq.core.selector.evaluate import compile_condition
from ferrymq.core.selector.parser import parse

__all__ = ["Selector", "SelectorError", "parse"]


class Selector:
    """A compiled selector; `matches` is what dispatch and fan-out call."""

    __slots__ = ("_fn", "text", "tree")

    def __init__(self, text: str, tree: Node) -> None:
        self.text = text
        self.tree = tree
        self._fn = compile_condition(tree)

    @classmethod
    def compile(cls, text: str) -> Selector:
        return cls(text, parse(text))

    def evaluate(self, message: Message) -> Value:
        """TRUE, FALSE or None (unknown)."""
        return self._fn(message)

    def matches(self, message: Message) -> bool:
        # Only TRUE selects: FALSE and unknown both leave the message alone.
        return self._fn(message) is True

    def __repr__(self) -> str:
        return f"<Selector {self.text!r}>"
