"""The selector parser and evaluator against a reference model.

Hypothesis draws expression trees (in this file's own tuple form) and header
dicts; each tree is rendered to selector text with as few parentheses as the
precedence rules allow, so the parser's precedence and associativity are on
trial too. The compiled selector must give what a direct interpreter of the
tree gives, NULL included.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import cache
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ferrymq.core import Destination, Message
from ferrymq.core.selector import Selector, SelectorError

Tree = tuple[Any, ...]
DEST = Destination.parse("/queue/q")

IDENTS = ["a", "b", "s", "JMSType", "JMSPriority"]
HEADER_NAMES = ["a", "b", "s", "type", "priority"]
HEADER_VALUES = ["1", "2", "-3", "2.5", "1e2", "0", "abc", "red", "true", "FALSE", "", "it's"]
STRINGS = ["red", "abc", "1", "2.5", "true", "", "it's", "a%b"]
NUMBERS = [0, 1, 2, 3, 10, 0.5, 2.5, 100.0]
CMP_OPS = ["=", "<>", "<", "<=", ">", ">="]

# -- strategies: typed trees ------------------------------------------------

idents = st.sampled_from(IDENTS).map(lambda n: ("id", n))
num_literals = st.sampled_from(NUMBERS).map(lambda v: ("lit", v))
str_literals = st.sampled_from(STRINGS).map(lambda v: ("lit", v))
bool_literals = st.booleans().map(lambda v: ("lit", v))

nums = st.recursive(
    st.one_of(num_literals, idents),
    lambda inner: st.one_of(
        inner.map(lambda e: ("neg", e)),
        st.tuples(st.just("arith"), st.sampled_from("+-*/"), inner, inner),
    ),
    max_leaves=4,
)


@st.composite
def like_patterns(draw: st.DrawFn) -> tuple[str, str | None]:
    escape = draw(st.sampled_from([None, "!"]))
    pieces = ["a", "b", "r", "e", "d", "'", "%", "_"]
    if escape is None:
        pieces.append("!")
    else:
        pieces += ["!%", "!_", "!!"]
    return "".join(draw(st.lists(st.sampled_from(pieces), max_size=5))), escape


def _predicates(conds: st.SearchStrategy[Tree]) -> st.SearchStrategy[Tree]:
    operands = st.one_of(nums, str_literals, bool_literals, conds)
    in_items = st.lists(st.one_of(str_literals, num_literals), min_size=1, max_size=3)
    return st.one_of(
        st.tuples(st.just("cmp"), st.sampled_from(CMP_OPS), operands, operands),
        st.tuples(st.just("between"), st.booleans(), nums, nums, nums),
        st.tuples(st.just("in"), st.booleans(), st.one_of(idents, nums), in_items),
        st.tuples(st.just("like"), st.booleans(), idents, like_patterns()),
        st.tuples(st.just("isnull"), st.booleans(), nums),
    )


conditions = st.deferred(
    lambda: st.one_of(
        bool_literals,
        idents,
        _predicates(conditions),
        conditions.map(lambda c: ("not", c)),
        st.tuples(st.sampled_from(["and", "or"]), conditions, conditions),
    )
)

headers = st.dictionaries(st.sampled_from(HEADER_NAMES), st.sampled_from(HEADER_VALUES))

# -- rendering with minimal parentheses -----------------------------------
# Levels: OR 1, AND 2, NOT 3, predicate 4, sum 5, product 6, unary 7, primary 8.


def render(t: Tree) -> str:
    return _render(t)[0]


def _wrap(t: Tree, need: int) -> str:
    text, level = _render(t)
    return text if level >= need else f"({text})"


def _literal(v: Any) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return repr(v)


def _render(t: Tree) -> tuple[str, int]:
    tag = t[0]
    if tag == "lit":
        return _literal(t[1]), 8
    if tag == "id":
        return t[1], 8
    if tag == "neg":
        return "- " + _wrap(t[1], 7), 7
    if tag == "arith":
        _, op, left, right = t
        level = 5 if op in "+-" else 6
        return f"{_wrap(left, level)} {op} {_wrap(right, level + 1)}", level
    if tag == "cmp":
        _, op, left, right = t
        return f"{_wrap(left, 5)} {op} {_wrap(right, 5)}", 4
    if tag in ("between", "in", "like"):
        negated = "NOT " if t[1] else ""
        if tag == "between":
            x, lo, hi = t[2:]
            return f"{_wrap(x, 5)} {negated}BETWEEN {_wrap(lo, 5)} AND {_wrap(hi, 5)}", 4
        if tag == "in":
            items = ", ".join(_literal(item[1]) for item in t[3])
            return f"{_wrap(t[2], 5)} {negated}IN ({items})", 4
        pattern, escape = t[3]
        text = f"{_wrap(t[2], 5)} {negated}LIKE {_literal(pattern)}"
        if escape is not None:
            text += f" ESCAPE {_literal(escape)}"
        return text, 4
    if tag == "isnull":
        return f"{_wrap(t[2], 5)} IS {'NOT ' if t[1] else ''}NULL", 4
    if tag == "not":
        return "NOT " + _wrap(t[1], 3), 3
    if tag == "and":
        return f"{_wrap(t[1], 2)} AND {_wrap(t[2], 3)}", 2
    assert tag == "or"
    return f"{_wrap(t[1], 1)} OR {_wrap(t[2], 2)}", 1


# -- the reference interpreter -------------------------------------------

NOT = {True: False, False: True, None: None}
AND = {
    (True, True): True,
    (True, False): False,
    (True, None): None,
    (False, True): False,
    (False, False): False,
    (False, None): False,
    (None, True): None,
    (None, False): False,
    (None, None): None,
}
OR = {(a, b): NOT[AND[(NOT[a], NOT[b])]] for (a, b) in AND}  # De Morgan


def ref_number(v: Any) -> Any:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return v
    if re.fullmatch(r"[+-]?[0-9]+", v):
        return int(v)
    if re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", v):
        return float(v)
    return None


def ref_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    return None


def ref_compare(op: str, a: Any, b: Any) -> bool | None:
    if a is None or b is None:
        return None
    if isinstance(a, str) and not isinstance(b, str):
        a = ref_bool(a) if isinstance(b, bool) else ref_number(a)
    if isinstance(b, str) and not isinstance(a, str):
        b = ref_bool(b) if isinstance(a, bool) else ref_number(b)
    if a is None or b is None:
        return None
    if isinstance(a, bool) or isinstance(b, bool):
        if isinstance(a, bool) and isinstance(b, bool) and op in ("=", "<>"):
            return (a == b) == (op == "=")
        return None
    if isinstance(a, str) != isinstance(b, str):
        return None
    return {
        "=": a == b,
        "<>": a != b,
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
    }[op]


def ref_like(value: str, pattern: str, escape: str | None) -> bool:
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == escape:
            tokens.append(("lit", pattern[i + 1]))
            i += 2
            continue
        c = pattern[i]
        tokens.append(("any", "") if c == "%" else ("one", "") if c == "_" else ("lit", c))
        i += 1

    @cache
    def match(ti: int, vi: int) -> bool:
        if ti == len(tokens):
            return vi == len(value)
        kind, c = tokens[ti]
        if kind == "any":
            return any(match(ti + 1, k) for k in range(vi, len(value) + 1))
        if vi == len(value):
            return False
        return (kind == "one" or value[vi] == c) and match(ti + 1, vi + 1)

    return match(0, 0)


def ref(t: Tree, h: dict[str, str]) -> Any:
    tag = t[0]
    if tag == "lit":
        return t[1]
    if tag == "id":
        name = t[1]
        if name == "JMSType":
            return h.get("type")
        if name == "JMSPriority":
            return h.get("priority", 4)
        return h.get(name)
    if tag == "neg":
        v = ref_number(ref(t[1], h))
        return None if v is None else -v
    if tag == "arith":
        _, op, left, right = t
        a, b = ref_number(ref(left, h)), ref_number(ref(right, h))
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
        if isinstance(a, int) and isinstance(b, int):
            return int(Fraction(a, b))  # truncates toward zero
        return a / b
    if tag == "cmp":
        return ref_compare(t[1], ref(t[2], h), ref(t[3], h))
    if tag == "between":
        x, lo, hi = (ref(e, h) for e in t[2:])
        result = AND[(ref_compare(">=", x, lo), ref_compare("<=", x, hi))]
        return NOT[result] if t[1] else result
    if tag == "in":
        x = ref(t[2], h)
        result: bool | None = False
        for item in t[3]:
            result = OR[(result, ref_compare("=", x, item[1]))]
        return NOT[result] if t[1] else result
    if tag == "like":
        x = ref(t[2], h)
        if not isinstance(x, str):
            return None
        matched = ref_like(x, *t[3])
        return not matched if t[1] else matched
    if tag == "isnull":
        is_null = ref(t[2], h) is None
        return not is_null if t[1] else is_null
    if tag == "not":
        return NOT[ref_bool(ref(t[1], h))]
    left, right = ref_bool(ref(t[1], h)), ref_bool(ref(t[2], h))
    return AND[(left, right)] if tag == "and" else OR[(left, right)]


# -- the properties --------------------------------------------------------


@settings(max_examples=1000, deadline=None)
@given(conditions, headers)
def test_evaluator_agrees_with_reference(tree: Tree, h: dict[str, str]) -> None:
    text = render(tree)
    selector = Selector.compile(text)
    expected = ref_bool(ref(tree, h))
    got = selector.evaluate(Message("ID:1", DEST, h, b""))
    assert got == expected and type(got) is type(expected), text
    assert selector.matches(Message("ID:1", DEST, h, b"")) is (expected is True)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab1.'%_()=<>!-+*/ ,eE", max_size=30) | st.text(max_size=30))
def test_any_text_parses_or_fails_with_a_position_inside_it(text: str) -> None:
    try:
        Selector.compile(text)
    except SelectorError as exc:
        assert 1 <= exc.position <= len(text) + 1
        assert exc.message.startswith(f"invalid selector at position {exc.position}: ")


@settings(max_examples=300, deadline=None)
@given(conditions, st.integers(min_value=0, max_value=200))
def test_a_truncated_selector_is_refused_or_still_valid(tree: Tree, cut: int) -> None:
    text = render(tree)
    try:
        Selector.compile(text[:cut])
    except SelectorError as exc:
        assert 1 <= exc.position <= min(cut, len(text)) + 1
