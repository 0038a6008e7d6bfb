"""The selector's syntax tree: what the parser builds and the compiler reads.

Every node keeps `pos`, the 0-based offset of the text it came from, so that
checks after parsing can still point at the problem.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "And",
    "Arith",
    "Between",
    "Compare",
    "Ident",
    "In",
    "IsNull",
    "Like",
    "Literal",
    "Neg",
    "Node",
    "Not",
    "Or",
    "Value",
]

# What an expression evaluates to: None is SQL's NULL (unknown).
Value = None | bool | int | float | str


@dataclass(frozen=True, slots=True)
class Literal:
    value: bool | int | float | str
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Ident:
    name: str
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Neg:
    """Unary minus (unary plus parses to its operand alone)."""

    operand: Node
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Arith:
    op: str  # + - * /
    left: Node
    right: Node
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # = <> < <= > >=
    left: Node
    right: Node
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Between:
    operand: Node
    low: Node
    high: Node
    negated: bool = False
    pos: int = 0


@dataclass(frozen=True, slots=True)
class In:
    operand: Node
    items: tuple[Literal, ...]
    negated: bool = False
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Like:
    operand: Node
    pattern: str
    escape: str | None = None
    negated: bool = False
    pos: int = 0


@dataclass(frozen=True, slots=True)
class IsNull:
    operand: Node
    negated: bool = False  # IS NOT NULL
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    pos: int = 0


@dataclass(frozen=True, slots=True)
class And:
    left: Node
    right: Node
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Or:
    left: Node
    right: Node
    pos: int = 0


Node = Literal | Ident | Neg | Arith | Compare | Between | In | Like | IsNull | Not | And | Or
