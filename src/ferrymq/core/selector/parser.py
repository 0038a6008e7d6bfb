"""Recursive-descent parser for JMS message selectors (the SQL-92 subset).

Grammar, loosest binding first (SQL-92's precedence: NOT binds looser than
a comparison, so `NOT a = 1` is `NOT (a = 1)`):

    selector  := or EOF
    or        := and (OR and)*
    and       := not (AND not)*
    not       := NOT not | predicate
    predicate := sum [ cmp-op sum
                     | [NOT] BETWEEN sum AND sum
                     | [NOT] IN '(' literal (',' literal)* ')'
                     | [NOT] LIKE string [ESCAPE string]
                     | IS [NOT] NULL ]
    sum       := product (('+' | '-') product)*
    product   := unary (('*' | '/') unary)*
    unary     := ('+' | '-') unary | primary
    primary   := literal | identifier | '(' or ')'

Comparisons do not chain (`a = b = c` is refused, as in SQL). Besides the
grammar the parser checks the kinds it can know without a message: a
literal or an arithmetic result used as a condition, or a string or boolean
literal in arithmetic, is an error at that operand's position. Identifiers
have no static kind (header values are strings that may be read as numbers
or booleans), so those are left to evaluation, where a mismatch is NULL.
"""

from __future__ import annotations

from typing import Literal as Lit

from ferrymq.core.errors import SelectorError
from ferrymq.core.selector._tokens import Tok, Token, tokenize
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
)

__all__ = ["parse"]

_COMPARISONS = frozenset({"=", "<>", "<", "<=", ">", ">="})

# What the parser can tell about an expression's type without a message.
Kind = Lit["bool", "num", "str", "any"]


def parse(text: str) -> Node:
    """The syntax tree of a selector; raises SelectorError naming the position."""
    return _Parser(text).selector()


def kind_of(node: Node) -> Kind:
    if isinstance(node, Literal):
        value = node.value
        if isinstance(value, bool):
            return "bool"
        return "str" if isinstance(value, str) else "num"
    if isinstance(node, Ident):
        return "any"
    if isinstance(node, Neg | Arith):
        return "num"
    return "bool"


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    # -- token helpers ---------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind is not Tok.EOF:
            self.i += 1
        return tok

    def _at_end(self) -> bool:
        return self.tok.kind is Tok.EOF

    def _at_keyword(self, *words: str) -> bool:
        tok = self.tok
        return tok.kind is Tok.KEYWORD and tok.text in words

    def _at_op(self, *ops: str) -> bool:
        tok = self.tok
        return tok.kind is Tok.OP and tok.text in ops

    def _fail(self, expected: str, tok: Token | None = None) -> SelectorError:
        tok = tok or self.tok
        return SelectorError(tok.pos + 1, f"expected {expected}, got {tok.describe()}")

    def _expect_keyword(self, word: str) -> Token:
        if not self._at_keyword(word):
            raise self._fail(word)
        return self._advance()

    def _expect_op(self, op: str) -> Token:
        if not self._at_op(op):
            raise self._fail(repr(op))
        return self._advance()

    # -- kind checks -----------------------------------------------------

    @staticmethod
    def _condition(node: Node) -> Node:
        kind = kind_of(node)
        if kind not in ("bool", "any"):
            what = "a number" if kind == "num" else "a string"
            raise SelectorError(node.pos + 1, f"expected a condition, got {what}")
        return node

    @staticmethod
    def _number(node: Node) -> Node:
        kind = kind_of(node)
        if kind not in ("num", "any"):
            what = "a string" if kind == "str" else "a boolean"
            raise SelectorError(node.pos + 1, f"expected a number, got {what}")
        return node

    # -- grammar ---------------------------------------------------------

    def selector(self) -> Node:
        if self.tok.kind is Tok.EOF:
            raise self._fail("an expression")
        node = self._condition(self._or())
        if not self._at_end():
            if self._at_op(*_COMPARISONS):
                raise SelectorError(self.tok.pos + 1, "comparisons do not chain; use AND")
            raise self._fail("AND, OR or end of selector")
        return node

    def _or(self) -> Node:
        node = self._and()
        while self._at_keyword("OR"):
            tok = self._advance()
            right = self._condition(self._and())
            node = Or(self._condition(node), right, tok.pos)
        return node

    def _and(self) -> Node:
        node = self._not()
        while self._at_keyword("AND"):
            tok = self._advance()
            right = self._condition(self._not())
            node = And(self._condition(node), right, tok.pos)
        return node

    def _not(self) -> Node:
        if self._at_keyword("NOT"):
            tok = self._advance()
            return Not(self._condition(self._not()), tok.pos)
        return self._predicate()

    def _predicate(self) -> Node:
        left = self._sum()
        tok = self.tok
        if self._at_op(*_COMPARISONS):
            self._advance()
            return Compare(tok.text, left, self._sum(), tok.pos)
        if self._at_keyword("IS"):
            self._advance()
            negated = self._at_keyword("NOT")
            if negated:
                self._advance()
            self._expect_keyword("NULL")
            return IsNull(left, negated, tok.pos)
        negated = False
        if self._at_keyword("NOT"):
            self._advance()
            negated = True
            if not self._at_keyword("BETWEEN", "IN", "LIKE"):
                raise self._fail("BETWEEN, IN or LIKE after NOT")
        if self._at_keyword("BETWEEN"):
            self._advance()
            low = self._sum()
            self._expect_keyword("AND")
            return Between(left, low, self._sum(), negated, tok.pos)
        if self._at_keyword("IN"):
            self._advance()
            return In(left, self._in_list(), negated, tok.pos)
        if self._at_keyword("LIKE"):
            self._advance()
            return self._like(left, negated, tok)
        return left

    def _in_list(self) -> tuple[Literal, ...]:
        self._expect_op("(")
        items = [self._list_literal()]
        while self._at_op(","):
            self._advance()
            items.append(self._list_literal())
        self._expect_op(")")
        return tuple(items)

    def _list_literal(self) -> Literal:
        tok = self.tok
        if tok.kind is Tok.STRING:
            self._advance()
            return Literal(tok.text, tok.pos)
        sign = 1
        if self._at_op("+", "-"):
            sign = -1 if tok.text == "-" else 1
            self._advance()
        num = self.tok
        if num.kind in (Tok.INT, Tok.FLOAT):
            self._advance()
            value = self._number_value(num)
            return Literal(-value if sign < 0 else value, tok.pos)
        raise self._fail("a string or number literal", num)

    def _like(self, left: Node, negated: bool, tok: Token) -> Node:
        kind = kind_of(left)
        if kind not in ("str", "any"):
            raise SelectorError(left.pos + 1, "LIKE needs a string on its left")
        pattern = self.tok
        if pattern.kind is not Tok.STRING:
            raise self._fail("a string literal pattern")
        self._advance()
        escape: str | None = None
        if self._at_keyword("ESCAPE"):
            self._advance()
            esc = self.tok
            if esc.kind is not Tok.STRING:
                raise self._fail("a string literal of one character")
            if len(esc.text) != 1:
                raise SelectorError(esc.pos + 1, "ESCAPE takes exactly one character")
            self._advance()
            escape = esc.text
            _check_escapes(pattern, escape)
        return Like(left, pattern.text, escape, negated, tok.pos)

    def _sum(self) -> Node:
        node = self._product()
        while self._at_op("+", "-"):
            tok = self._advance()
            right = self._number(self._product())
            node = Arith(tok.text, self._number(node), right, node.pos)
        return node

    def _product(self) -> Node:
        node = self._unary()
        while self._at_op("*", "/"):
            tok = self._advance()
            right = self._number(self._unary())
            node = Arith(tok.text, self._number(node), right, node.pos)
        return node

    def _unary(self) -> Node:
        if self._at_op("+", "-"):
            tok = self._advance()
            operand = self._number(self._unary())
            if tok.text == "+":
                return operand
            # Fold "-5" into a literal: it reads as one, and errors point at the sign.
            if isinstance(operand, Literal) and not isinstance(operand.value, bool | str):
                return Literal(-operand.value, tok.pos)
            return Neg(operand, tok.pos)
        return self._primary()

    def _primary(self) -> Node:
        tok = self.tok
        kind = tok.kind
        if kind is Tok.IDENT:
            self._advance()
            return Ident(tok.text, tok.pos)
        if kind is Tok.STRING:
            self._advance()
            return Literal(tok.text, tok.pos)
        if kind in (Tok.INT, Tok.FLOAT):
            self._advance()
            return Literal(self._number_value(tok), tok.pos)
        if self._at_keyword("TRUE", "FALSE"):
            self._advance()
            return Literal(tok.text == "TRUE", tok.pos)
        if self._at_keyword("NULL"):
            raise SelectorError(tok.pos + 1, "NULL is only allowed in IS [NOT] NULL")
        if self._at_op("("):
            self._advance()
            node = self._or()
            self._expect_op(")")
            return node
        raise self._fail("an expression", tok)

    @staticmethod
    def _number_value(tok: Token) -> int | float:
        if tok.kind is Tok.INT:
            return int(tok.text)
        return float(tok.text)


def _check_escapes(pattern: Token, escape: str) -> None:
    """The escape character may only precede '%', '_' or itself (SQL-92)."""
    text = pattern.text
    i = 0
    while i < len(text):
        if text[i] == escape:
            if i + 1 >= len(text) or text[i + 1] not in ("%", "_", escape):
                # The pattern's own position: its text may hold doubled quotes,
                # so offsets inside it do not map back to the selector exactly.
                raise SelectorError(
                    pattern.pos + 1,
                    f"in LIKE pattern, escape {escape!r} must precede '%', '_' or itself",
                )
            i += 2
        else:
            i += 1
