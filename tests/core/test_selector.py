"""Each selector construct, the JMS header names, type conversion, and the
positions errors name."""

from __future__ import annotations

import pytest

from ferrymq.core import Destination, Message
from ferrymq.core.selector import Selector, SelectorError

DEST = Destination.parse("/queue/q")


def msg(persistent: bool = False, **headers: str) -> Message:
    m = Message("ID:n-1", DEST, headers, b"", persistent=persistent, timestamp=1700)
    return m


def ev(text: str, **headers: str) -> bool | int | float | str | None:
    return Selector.compile(text).evaluate(msg(**headers))


@pytest.mark.parametrize(
    ("text", "headers", "expected"),
    [
        ("color = 'red'", {"color": "red"}, True),
        ("color <> 'red'", {"color": "red"}, False),
        ("color = 'red'", {}, None),
        ("s = 'it''s'", {"s": "it's"}, True),
        ("n < 10", {"n": "9"}, True),
        ("n <= 9", {"n": "9"}, True),
        ("n > 9", {"n": "9"}, False),
        ("n >= 9.0", {"n": "9"}, True),
        ("n = 1e2", {"n": "100"}, True),
        ("n = .5", {"n": "0.5"}, True),
        ("n = 7.", {"n": "7"}, True),
        ("n = 12", {"n": "abc"}, None),  # does not read as a number: unknown
        ("n = '12'", {"n": "12"}, True),  # two strings compare as strings
        ("n > '9'", {"n": "10"}, False),  # ...by code point
        ("flag = TRUE", {"flag": "true"}, True),
        ("flag = FALSE", {"flag": "yes"}, None),
        ("flag", {"flag": "TRUE"}, True),
        ("TRUE <> FALSE", {}, True),
        ("TRUE < FALSE", {}, None),
        ("TRUE = 1", {}, None),
        # arithmetic
        ("a + b * 2 = 7", {"a": "1", "b": "3"}, True),
        ("(a + b) * 2 = 8", {"a": "1", "b": "3"}, True),
        ("a - b - 1 = -3", {"a": "1", "b": "3"}, True),
        ("-a = -1", {"a": "1"}, True),
        ("- -a = +1", {"a": "1"}, True),
        ("7 / 2 = 3", {}, True),
        ("-7 / 2 = -3", {}, True),  # truncates toward zero, as Java
        ("7.0 / 2 = 3.5", {}, True),
        ("a / 0 = 1", {"a": "1"}, None),
        ("a + 1 = 2", {"a": "x"}, None),
        ("a + 1 = 2", {}, None),
        # BETWEEN
        ("n BETWEEN 1 AND 5", {"n": "5"}, True),
        ("n BETWEEN 1 AND 5", {"n": "6"}, False),
        ("n NOT BETWEEN 1 AND 5", {"n": "6"}, True),
        ("n BETWEEN 1 AND 5", {}, None),
        ("c BETWEEN 'a' AND 'c'", {"c": "b"}, True),
        # IN
        ("c IN ('red', 'blue')", {"c": "blue"}, True),
        ("c IN ('red', 'blue')", {"c": "green"}, False),
        ("c NOT IN ('red', 'blue')", {"c": "green"}, True),
        ("c NOT IN ('red', 'blue')", {}, None),
        ("n IN (1, 2, -3)", {"n": "-3"}, True),
        # LIKE
        ("s LIKE 'ab%'", {"s": "abc"}, True),
        ("s LIKE 'ab%'", {"s": "ab"}, True),
        ("s LIKE 'a_c'", {"s": "abc"}, True),
        ("s LIKE 'a_c'", {"s": "abbc"}, False),
        ("s NOT LIKE '%x%'", {"s": "abc"}, True),
        ("s LIKE '100!%' ESCAPE '!'", {"s": "100%"}, True),
        ("s LIKE '100!%' ESCAPE '!'", {"s": "1000"}, False),
        ("s LIKE 'a!_b' ESCAPE '!'", {"s": "axb"}, False),
        ("s LIKE 'a!!b' ESCAPE '!'", {"s": "a!b"}, True),
        ("s LIKE '.*'", {"s": "abc"}, False),  # no regex leaks through
        ("s LIKE 'a%'", {}, None),
        ("s LIKE 'a%'", {"s": "a\nb"}, True),
        # IS NULL
        ("x IS NULL", {}, True),
        ("x IS NULL", {"x": ""}, False),
        ("x IS NOT NULL", {"x": ""}, True),
        # three-valued logic
        ("x = 1 AND FALSE", {}, False),
        ("x = 1 AND TRUE", {}, None),
        ("x = 1 OR TRUE", {}, True),
        ("x = 1 OR FALSE", {}, None),
        ("NOT x = 1", {}, None),
        ("NOT x = 1", {"x": "2"}, True),
        ("NOT NOT x = 2", {"x": "2"}, True),
        ("a = 1 OR a = 2 AND b = 3", {"a": "1", "b": "0"}, True),  # AND binds tighter
        # keywords in any case; identifiers are case-sensitive
        ("c in ('x') and NOT c is null", {"c": "x"}, True),
        ("C = 'x'", {"c": "x"}, None),
        ("$a_1 = 1", {"$a_1": "1"}, True),
    ],
)
def test_constructs(text: str, headers: dict[str, str], expected: object) -> None:
    got = ev(text, **headers)
    assert got == expected and type(got) is type(expected)


def test_jms_header_names() -> None:
    m = msg(
        persistent=True,
        **{"priority": "7", "correlation-id": "c1", "type": "order"},
    )

    def ok(text: str, message: Message = m) -> bool:
        return Selector.compile(text).matches(message)

    assert ok("JMSMessageID = 'ID:n-1'")
    assert ok("JMSPriority > 5")
    assert ok("JMSPriority = 4", msg())  # JMS's default when absent
    assert ok("JMSTimestamp = 1700")
    assert ok("JMSCorrelationID = 'c1'")
    assert ok("JMSType = 'order'")
    assert ok("JMSDeliveryMode = 'PERSISTENT'")
    assert ok("JMSDeliveryMode = 'NON_PERSISTENT'", msg())


def test_only_true_matches() -> None:
    s = Selector.compile("n > 1")
    assert s.matches(msg(n="2"))
    assert not s.matches(msg(n="1"))
    assert not s.matches(msg())  # unknown
    assert not Selector.compile("NOT n > 1").matches(msg())  # still unknown


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("", 1, "expected an expression, got end of selector"),
        ("color = ", 9, "expected an expression, got end of selector"),
        ("color = 'red' AND price >> 5", 26, "expected an expression, got '>'"),
        ("color = 'red", 9, "string literal is not closed"),
        ('color = "red"', 9, "string literal"),
        ("a != 1", 3, "'!=' is not SQL; use '<>'"),
        ("a # 1", 3, "unexpected character '#'"),
        ("a = 1 b = 2", 7, "expected AND, OR or end of selector, got identifier 'b'"),
        ("a = b = c", 7, "comparisons do not chain"),
        ("(a = 1", 7, "expected ')', got end of selector"),
        ("a = 1)", 6, "expected AND, OR or end of selector, got ')'"),
        ("a + 1", 1, "expected a condition, got a number"),
        ("'x'", 1, "expected a condition, got a string"),
        ("a = 1 AND 5", 11, "expected a condition, got a number"),
        ("a = 'x' + 1", 5, "expected a number, got a string"),
        ("a = TRUE * 2", 5, "expected a number, got a boolean"),
        ("a BETWEEN 1 OR 2", 13, "expected AND, got 'OR'"),
        ("a NOT = 1", 7, "expected BETWEEN, IN or LIKE after NOT"),
        ("a IN ()", 7, "expected a string or number literal, got ')'"),
        ("a IN ('x' 'y')", 11, "expected ')', got string literal"),
        ("a IN (b)", 7, "expected a string or number literal, got identifier 'b'"),
        ("a LIKE b", 8, "expected a string literal pattern"),
        ("5 LIKE 'x'", 1, "LIKE needs a string on its left"),
        ("a LIKE 'x' ESCAPE 'ab'", 19, "ESCAPE takes exactly one character"),
        ("a LIKE 'x!y' ESCAPE '!'", 8, "escape '!' must precede '%', '_' or itself"),
        ("a IS 5", 6, "expected NULL, got '5'"),
        ("a = NULL", 5, "NULL is only allowed in IS [NOT] NULL"),
        ("a = 1e", 6, "exponent needs digits"),
        ("a = 12ab", 7, "malformed number '12a'"),
    ],
)
def test_errors_name_the_position(text: str, position: int, reason: str) -> None:
    with pytest.raises(SelectorError) as info:
        Selector.compile(text)
    assert info.value.position == position
    assert reason in info.value.reason
    assert info.value.message.startswith(f"invalid selector at position {position}: ")
