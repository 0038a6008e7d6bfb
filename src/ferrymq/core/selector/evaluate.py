"""Selector semantics, and the compiler from a syntax tree to nested closures.

Values are None (SQL's NULL: unknown), bool, int, float or str. STOMP
headers are all strings, so values are converted where the other operand
asks for it (what ActiveMQ does for STOMP and AMQP messages):

- compared with a number, or used in arithmetic, a string that reads as a
  numeric literal (`12`, `-3`, `2.5`, `1e3`) is that number (int without a
  point or exponent, else float); any other string gives NULL;
- compared with TRUE or FALSE, or used as a condition, the strings `true`
  and `false` (any case) are booleans; any other string gives NULL.

Two strings compare as strings (by code point, `<` too, as in ActiveMQ),
numbers as numbers; booleans only with `=` and `<>`; any other mix, or a
NULL operand, gives NULL. Arithmetic with a NULL gives NULL; so does
division by zero. Integer division truncates toward zero (Java's long
division). AND, OR and NOT use SQL's three-valued logic, and a message is
selected only when the whole selector is TRUE.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from ferrymq.core.message import Message
from ferrymq.core.selector.ast import (
    And,
    Arith,
    Between,
    Compare,
    Ident,
    In,
    IsNull,
    Like,
    Literal,
    Neg,
    Node,
    Not,
    Or,
    Value,
)

__all__ = [
    "Getter",
    "arith",
    "compare",
    "compile_tree",
    "like_regex",
    "logical_and",
    "logical_not",
    "logical_or",
    "resolve",
    "to_bool",
    "to_number",
]

Getter = Callable[[Message], Value]

# ASCII digits only (\d would take any Unicode digit).
_NUMERIC = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

# JMS header names, mapped onto what a STOMP message carries.
_JMS: dict[str, Getter] = {
    "JMSMessageID": lambda m: m.id,
    # Absent means JMS's default priority, 4.
    "JMSPriority": lambda m: m.headers.get("priority", 4),
    "JMSTimestamp": lambda m: m.timestamp,
    "JMSCorrelationID": lambda m: m.headers.get("correlation-id"),
    "JMSType": lambda m: m.headers.get("type"),
    "JMSDeliveryMode": lambda m: "PERSISTENT" if m.persistent else "NON_PERSISTENT",
}


def resolve(name: str) -> Getter:
    """How an identifier reads its value from a message."""
    special = _JMS.get(name)
    if special is not None:
        return special
    return lambda m: m.headers.get(name)


def to_number(value: Value) -> int | float | None:
    kind = type(value)
    if kind is int or kind is float:
        return value  # type: ignore[return-value]
    if kind is str:
        text: str = value  # type: ignore[assignment]
        if _NUMERIC.fullmatch(text) is None:
            return None
        if "." in text or "e" in text or "E" in text:
            return float(text)
        return int(text)
    return None  # NULL, or a boolean: not a number


def to_bool(value: Value) -> bool | None:
    if type(value) is bool:
        return value
    if type(value) is str:
        lowered = value.lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
    return None


def _is_number(value: Value) -> bool:
    kind = type(value)
    return kind is int or kind is float


def compare(op: str, left: Value, right: Value) -> bool | None:
    if left is None or right is None:
        return None
    # Header strings take the type of the other side when they can.
    if type(left) is str and type(right) is not str:
        left = to_bool(left) if type(right) is bool else to_number(left)
    elif type(right) is str and type(left) is not str:
        right = to_bool(right) if type(left) is bool else to_number(right)
    if left is None or right is None:
        return None
    if type(left) is str and type(right) is str:
        return _ORDER[op](left, right)
    if _is_number(left) and _is_number(right):
        return _ORDER[op](left, right)
    if type(left) is bool and type(right) is bool and op in ("=", "<>"):
        return (left == right) is (op == "=")
    return None


def arith(op: str, left: Value, right: Value) -> int | float | None:
    a = to_number(left)
    b = to_number(right)
    if a is None or b is None:
        return None
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        return None
    if type(a) is int and type(b) is int:
        q = abs(a) // abs(b)
        return -q if (a < 0) != (b < 0) else q
    return a / b


def negate(value: Value) -> int | float | None:
    a = to_number(value)
    return None if a is None else -a


def logical_not(value: bool | None) -> bool | None:
    return None if value is None else not value


def logical_and(left: bool | None, right: bool | None) -> bool | None:
    if left is False or right is False:
        return False
    if left is None or right is None:
        return None
    return True


def logical_or(left: bool | None, right: bool | None) -> bool | None:
    if left is True or right is True:
        return True
    if left is None or right is None:
        return None
    return False


def like_regex(pattern: str, escape: str | None) -> re.Pattern[str]:
    """`%` any run of characters, `_` one character; `escape` makes the next literal."""
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == escape and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "%":
            parts.append(".*")
        elif c == "_":
            parts.append(".")
        else:
            parts.append(re.escape(c))
        i += 1
    return re.compile("".join(parts), re.DOTALL)


# -- the compiler --------------------------------------------------------


def compile_tree(node: Node) -> Getter:
    """A function of a message giving the node's value (None for NULL)."""
    if isinstance(node, Literal):
        value = node.value
        return lambda m: value
    if isinstance(node, Ident):
        return resolve(node.name)
    if isinstance(node, Neg):
        operand = compile_tree(node.operand)
        return lambda m: negate(operand(m))
    if isinstance(node, Arith):
        op, left, right = node.op, compile_tree(node.left), compile_tree(node.right)
        return lambda m: arith(op, left(m), right(m))
    if isinstance(node, Compare):
        return _compile_compare(node)
    if isinstance(node, Between):
        x, lo, hi = compile_tree(node.operand), compile_tree(node.low), compile_tree(node.high)
        if node.negated:
            return lambda m: logical_not(_between(x(m), lo(m), hi(m)))
        return lambda m: _between(x(m), lo(m), hi(m))
    if isinstance(node, In):
        return _compile_in(node)
    if isinstance(node, Like):
        x = compile_tree(node.operand)
        fullmatch = like_regex(node.pattern, node.escape).fullmatch
        negated = node.negated

        def like(m: Message) -> bool | None:
            value = x(m)
            if type(value) is not str:
                return None
            return (fullmatch(value) is None) is negated

        return like
    if isinstance(node, IsNull):
        x = compile_tree(node.operand)
        if node.negated:
            return lambda m: x(m) is not None
        return lambda m: x(m) is None
    if isinstance(node, Not):
        operand = compile_condition(node.operand)
        return lambda m: logical_not(operand(m))
    return _compile_logic(node)


def _compile_logic(node: And | Or) -> Getter:
    left, right = compile_condition(node.left), compile_condition(node.right)
    if isinstance(node, And):

        def and_(m: Message) -> bool | None:
            a = left(m)
            if a is False:
                return False  # right cannot change it: skip evaluating it
            return logical_and(a, right(m))

        return and_

    def or_(m: Message) -> bool | None:
        a = left(m)
        if a is True:
            return True
        return logical_or(a, right(m))

    return or_


def compile_condition(node: Node) -> Callable[[Message], bool | None]:
    """Like compile_tree, for a place that needs TRUE/FALSE/NULL: an
    identifier there reads 'true'/'false' as booleans."""
    getter = compile_tree(node)
    if isinstance(node, Ident | Literal):
        return lambda m: to_bool(getter(m))
    return getter  # type: ignore[return-value]  # every other condition node is boolean


def _compile_compare(node: Compare) -> Getter:
    op, left, right = node.op, compile_tree(node.left), compile_tree(node.right)
    if isinstance(node.right, Literal) and type(node.right.value) is str:
        # The common `header = 'text'`: two strings compare directly.
        value: str = node.right.value
        test = _ORDER[op]

        def str_compare(m: Message) -> bool | None:
            a = left(m)
            if type(a) is str:
                return test(a, value)
            return compare(op, a, value)

        return str_compare
    return lambda m: compare(op, left(m), right(m))


def _between(x: Value, low: Value, high: Value) -> bool | None:
    return logical_and(compare(">=", x, low), compare("<=", x, high))


def _compile_in(node: In) -> Getter:
    x = compile_tree(node.operand)
    items = tuple(item.value for item in node.items)
    negated = node.negated

    def in_(m: Message) -> bool | None:
        value = x(m)
        result: bool | None = False
        for item in items:
            result = logical_or(result, compare("=", value, item))
            if result is True:
                break
        return logical_not(result) if negated else result

    return in_
