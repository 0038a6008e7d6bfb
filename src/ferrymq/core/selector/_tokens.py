"""The selector tokenizer: text in, a list of tokens with their offsets out.

Hand-written rather than one big regular expression so that every error can
name the exact character it stopped at.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ferrymq.core.errors import SelectorError

__all__ = ["KEYWORDS", "Tok", "Token", "tokenize"]


class Tok(enum.Enum):
    IDENT = enum.auto()
    KEYWORD = enum.auto()
    STRING = enum.auto()
    INT = enum.auto()  # exact numeric literal
    FLOAT = enum.auto()  # approximate numeric literal
    OP = enum.auto()
    EOF = enum.auto()


# Reserved words, matched case-insensitively (SQL), stored upper-case.
KEYWORDS = frozenset(
    {"AND", "OR", "NOT", "BETWEEN", "LIKE", "ESCAPE", "IN", "IS", "NULL", "TRUE", "FALSE"}
)

# Longest first, so that "<=" is not read as "<" then "=".
_OPERATORS = ("<>", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "(", ")", ",")


@dataclass(frozen=True, slots=True)
class Token:
    kind: Tok
    # The keyword or operator itself, the identifier's name, the string's
    # unquoted value, or the number's text.
    text: str
    pos: int  # 0-based offset into the selector text

    def describe(self) -> str:
        """How an error message names this token."""
        if self.kind is Tok.EOF:
            return "end of selector"
        if self.kind is Tok.STRING:
            return "string literal"
        if self.kind is Tok.IDENT:
            return f"identifier {self.text!r}"
        return repr(self.text)


def _digit(c: str) -> bool:
    # ASCII only: str.isdigit() also takes '¹' or '٣', which int() refuses.
    return "0" <= c <= "9"


def _ident_start(c: str) -> bool:
    # Java identifier characters, as JMS property names are.
    return c.isalpha() or c in "_$"


def _ident_part(c: str) -> bool:
    return c.isalnum() or c in "_$"


def tokenize(text: str) -> list[Token]:
    """Split a selector into tokens; raises SelectorError at the first bad character."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif _ident_start(c):
            start = i
            while i < n and _ident_part(text[i]):
                i += 1
            word = text[start:i]
            if word.upper() in KEYWORDS:
                tokens.append(Token(Tok.KEYWORD, word.upper(), start))
            else:
                tokens.append(Token(Tok.IDENT, word, start))
        elif _digit(c) or (c == "." and i + 1 < n and _digit(text[i + 1])):
            i = _number(text, i, tokens)
        elif c == "'":
            i = _string(text, i, tokens)
        else:
            for op in _OPERATORS:
                if text.startswith(op, i):
                    tokens.append(Token(Tok.OP, op, i))
                    i += len(op)
                    break
            else:
                if text.startswith("!=", i):
                    raise SelectorError(i + 1, "'!=' is not SQL; use '<>'")
                if c == '"':
                    raise SelectorError(i + 1, "string literals take single quotes")
                raise SelectorError(i + 1, f"unexpected character {c!r}")
    tokens.append(Token(Tok.EOF, "", n))
    return tokens


def _number(text: str, i: int, tokens: list[Token]) -> int:
    """Exact (57) or approximate (7E3, 57.9e-2, 7., .5) numeric literal."""
    start, n = i, len(text)
    approximate = False
    while i < n and _digit(text[i]):
        i += 1
    if i < n and text[i] == ".":
        approximate = True
        i += 1
        while i < n and _digit(text[i]):
            i += 1
    if i < n and text[i] in "eE":
        j = i + 1
        if j < n and text[j] in "+-":
            j += 1
        if j < n and _digit(text[j]):
            approximate = True
            i = j
            while i < n and _digit(text[i]):
                i += 1
        else:
            raise SelectorError(i + 1, "malformed number: exponent needs digits")
    if i < n and _ident_part(text[i]):
        raise SelectorError(i + 1, f"malformed number {text[start : i + 1]!r}")
    tokens.append(Token(Tok.FLOAT if approximate else Tok.INT, text[start:i], start))
    return i


def _string(text: str, i: int, tokens: list[Token]) -> int:
    """'...' with '' standing for one quote."""
    start = i
    i += 1
    parts: list[str] = []
    n = len(text)
    while True:
        end = text.find("'", i)
        if end < 0:
            raise SelectorError(start + 1, "string literal is not closed")
        parts.append(text[i:end])
        if end + 1 < n and text[end + 1] == "'":
            parts.append("'")
            i = end + 2
        else:
            tokens.append(Token(Tok.STRING, "".join(parts), start))
            return end + 1
