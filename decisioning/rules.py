"""The rule language of eligibility rules, segments and trigger conditions.

A rule is a small, safe boolean expression over customer features::

    age >= 40
    not owns_product_x
    basket_cluster in [1, 3]
    age between 25 and 40
    urbanity == 'urban' and engagement_trend > 0
    (region != 'north' or clv_12m >= 150) and consent_email

Grammar (keywords are lower case; ``true``/``false``/``null`` literals)::

    rule       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand [ cmp operand
                          | ["not"] "in" "[" literal ("," literal)* "]"
                          | "between" operand "and" operand
                          | "is" ["not"] "null" ]
    operand    := NAME | NUMBER | STRING | "true" | "false" | "-" NUMBER | "(" or ")"
    cmp        := "==" | "!=" | "<" | "<=" | ">" | ">="

Rules are parsed by a hand-written recursive-descent parser (no ``eval``), so a
syntax error reports its character position, and compiled to a function that
evaluates the rule over a whole :class:`pandas.DataFrame` at once.

Nulls follow SQL's three-valued logic (a comparison with an unknown value is
unknown; ``false and unknown`` is false; ``not unknown`` is unknown) and a rule
that ends *unknown* is **false**: a customer of unknown age is never ``age >= 40``
nor ``not (age >= 40)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import pandas as pd

from nextbest.errors import BadInputError


class RuleError(BadInputError):
    """A rule that does not parse or names an unknown feature."""


# --------------------------------------------------------------------------- syntax tree
@dataclass(frozen=True)
class Name:
    name: str
    pos: int


@dataclass(frozen=True)
class Literal:
    value: float | str | bool | None
    pos: int


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True)
class In:
    operand: Node
    values: tuple[Literal, ...]
    negate: bool
    pos: int


@dataclass(frozen=True)
class Between:
    operand: Node
    low: Node
    high: Node
    pos: int


@dataclass(frozen=True)
class IsNull:
    operand: Node
    negate: bool
    pos: int


@dataclass(frozen=True)
class Not:
    operand: Node
    pos: int


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    operands: tuple[Node, ...]
    pos: int


Node = Union[Name, Literal, Compare, In, Between, IsNull, Not, BoolOp]

# --------------------------------------------------------------------------- tokenizer
_KEYWORDS = frozenset({"and", "or", "not", "in", "between", "is", "null", "true", "false"})
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|-)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # number | string | name | keyword | op | end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _SyntaxError(f"unexpected character {text[pos]!r}", pos)
        kind = m.lastgroup or ""
        if kind != "ws":
            word = m.group()
            if kind == "name" and word.lower() in _KEYWORDS:
                kind, word = "keyword", word.lower()
            tokens.append(_Token(kind, word, pos))
        pos = m.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


class _SyntaxError(Exception):
    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


# --------------------------------------------------------------------------- parser
class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def _take(self) -> _Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def _at(self, kind: str, text: str | None = None) -> bool:
        return self.tok.kind == kind and (text is None or self.tok.text == text)

    def _expect(self, kind: str, text: str, what: str) -> _Token:
        if not self._at(kind, text):
            raise _SyntaxError(f"expected {what}, found {_describe(self.tok)}", self.tok.pos)
        return self._take()

    def parse(self) -> Node:
        if self._at("end"):
            raise _SyntaxError("empty rule", 0)
        node = self._or()
        if not self._at("end"):
            raise _SyntaxError(f"unexpected {_describe(self.tok)}; combine conditions with 'and'/'or'", self.tok.pos)
        return node

    def _or(self) -> Node:
        pos = self.tok.pos
        parts = [self._and()]
        while self._at("keyword", "or"):
            self._take()
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts), pos)

    def _and(self) -> Node:
        pos = self.tok.pos
        parts = [self._not()]
        while self._at("keyword", "and"):
            self._take()
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts), pos)

    def _not(self) -> Node:
        if self._at("keyword", "not"):
            pos = self._take().pos
            return Not(self._not(), pos)
        return self._comparison()

    def _comparison(self) -> Node:
        left = self._operand()
        t = self.tok
        if t.kind == "op" and t.text in ("==", "!=", "<", "<=", ">", ">="):
            self._take()
            return Compare(t.text, left, self._operand(), t.pos)
        if self._at("keyword", "not") and self.tokens[self.i + 1].kind == "keyword" and self.tokens[self.i + 1].text == "in":
            self._take()
            self._take()
            return In(left, self._list(), True, t.pos)
        if self._at("keyword", "in"):
            self._take()
            return In(left, self._list(), False, t.pos)
        if self._at("keyword", "between"):
            self._take()
            low = self._operand()
            self._expect("keyword", "and", "'and' between the bounds of 'between'")
            return Between(left, low, self._operand(), t.pos)
        if self._at("keyword", "is"):
            self._take()
            negate = False
            if self._at("keyword", "not"):
                self._take()
                negate = True
            self._expect("keyword", "null", "'null' after 'is'")
            return IsNull(left, negate, t.pos)
        return left

    def _operand(self) -> Node:
        t = self.tok
        if t.kind == "name":
            self._take()
            return Name(t.text, t.pos)
        if t.kind in ("number", "string") or (t.kind == "keyword" and t.text in ("true", "false", "null")):
            return self._literal()
        if self._at("op", "-"):
            return self._literal()
        if self._at("op", "("):
            self._take()
            node = self._or()
            self._expect("op", ")", "')'")
            return node
        raise _SyntaxError(f"expected a feature name or a value, found {_describe(t)}", t.pos)

    def _literal(self) -> Literal:
        t = self._take()
        if t.kind == "op" and t.text == "-":
            n = self.tok
            if n.kind != "number":
                raise _SyntaxError(f"expected a number after '-', found {_describe(n)}", n.pos)
            self._take()
            return Literal(-float(n.text), t.pos)
        if t.kind == "number":
            return Literal(float(t.text), t.pos)
        if t.kind == "string":
            return Literal(bytes(t.text[1:-1], "utf-8").decode("unicode_escape"), t.pos)
        if t.kind == "keyword" and t.text in ("true", "false"):
            return Literal(t.text == "true", t.pos)
        if t.kind == "keyword" and t.text == "null":
            return Literal(None, t.pos)
        raise _SyntaxError(f"expected a value, found {_describe(t)}", t.pos)

    def _list(self) -> tuple[Literal, ...]:
        self._expect("op", "[", "'[' to start the list")
        values = [self._literal()]
        while self._at("op", ","):
            self._take()
            values.append(self._literal())
        self._expect("op", "]", "']' or ',' in the list")
        return tuple(values)


def _describe(t: _Token) -> str:
    return "the end of the rule" if t.kind == "end" else repr(t.text)


def names_of(node: Node) -> tuple[Name, ...]:
    """Every feature reference in the tree, in source order."""
    if isinstance(node, Name):
        return (node,)
    if isinstance(node, Literal):
        return ()
    if isinstance(node, Compare):
        return names_of(node.left) + names_of(node.right)
    if isinstance(node, (In, IsNull, Not)):
        return names_of(node.operand)
    if isinstance(node, Between):
        return names_of(node.operand) + names_of(node.low) + names_of(node.high)
    return tuple(n for part in node.operands for n in names_of(part))


# --------------------------------------------------------------------------- evaluation
#: (value, known): a three-valued boolean vector; ``value`` is meaningful where ``known``.
Tri = tuple[np.ndarray, np.ndarray]


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        raise RuleError(f"feature {name!r} is not in the feature frame; rebuild features (`nextbest features build`)")
    return frame[name]


def _numeric(s: pd.Series) -> np.ndarray:
    if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        return pd.to_numeric(s.astype(object), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return s.to_numpy(dtype=float, na_value=np.nan)


def _is_numeric_series(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)


@dataclass(frozen=True)
class _Vec:
    """An operand evaluated over the frame: numbers (float, NaN = null) or objects."""

    values: np.ndarray
    known: np.ndarray
    numeric: bool


class RuleFrame:
    """A feature frame prepared for evaluating rules: each column is read and converted once.

    Evaluating many rules over one small batch (every offer's eligibility, the
    segments, the trigger conditions) would otherwise repeat the same pandas
    column conversions per rule; :func:`~nextbest.decisioning.candidates.targeting`
    builds one and passes it to every :meth:`Rule.evaluate`.

    Parameters
    ----------
    frame
        The feature frame.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.n = len(frame)
        self._operands: dict[str, _Vec] = {}
        self._truths: dict[str, Tri] = {}

    def operand(self, name: str) -> _Vec:
        """Column ``name`` as numbers (NaN = null) or objects."""
        vec = self._operands.get(name)
        if vec is None:
            s = _column(self.frame, name)
            if _is_numeric_series(s):
                v = _numeric(s)
                vec = _Vec(v, ~np.isnan(v), numeric=True)
            else:
                v = s.to_numpy(dtype=object, na_value=None)
                vec = _Vec(v, ~pd.isna(v), numeric=False)
            self._operands[name] = vec
        return vec

    def truth(self, name: str) -> Tri:
        """Column ``name`` read as a condition: non-zero is true, null is unknown."""
        tri = self._truths.get(name)
        if tri is None:
            s = _column(self.frame, name)
            v = _numeric(s) if not _is_numeric_series(s) else s.to_numpy(dtype=float, na_value=np.nan)
            known = ~np.isnan(v)
            tri = self._truths[name] = ((v != 0) & known, known)
        return tri


def _operand(node: Node, frame: RuleFrame) -> _Vec:
    n = frame.n
    if isinstance(node, Literal):
        known = np.full(n, node.value is not None)
        if node.value is None or isinstance(node.value, str):
            return _Vec(np.full(n, node.value, dtype=object), known, numeric=False)
        return _Vec(np.full(n, float(node.value)), known, numeric=True)
    if isinstance(node, Name):
        return frame.operand(node.name)
    value, known = _evaluate(node, frame)
    return _Vec(value.astype(float), known, numeric=True)


_CMP: dict[str, Callable[[Any, Any], Any]] = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


def _compare(op: str, a: _Vec, b: _Vec) -> Tri:
    known = a.known & b.known
    if a.numeric and b.numeric:
        with np.errstate(invalid="ignore"):
            value = _CMP[op](a.values, b.values)
        return value & known, known
    if a.numeric != b.numeric:
        # A text value against a numeric feature: compare as text only for equality.
        a_vals = a.values.astype(object) if a.numeric else a.values
        b_vals = b.values.astype(object) if b.numeric else b.values
        a_vals = np.where(a.known, a_vals, None)
        b_vals = np.where(b.known, b_vals, None)
    else:
        a_vals, b_vals = a.values, b.values
    if op in ("==", "!="):
        value = np.zeros(len(known), dtype=bool)
        value[known] = a_vals[known] == b_vals[known]
        if op == "!=":
            value = ~value & known
        return value, known
    value = np.zeros(len(known), dtype=bool)
    value[known] = _CMP[op](a_vals[known].astype(str), b_vals[known].astype(str))
    return value, known


def _evaluate(node: Node, frame: RuleFrame) -> Tri:
    n = frame.n
    if isinstance(node, BoolOp):
        parts = [_evaluate(p, frame) for p in node.operands]
        if node.op == "and":
            false = np.zeros(n, dtype=bool)
            true = np.ones(n, dtype=bool)
            for v, k in parts:
                false |= k & ~v
                true &= k & v
        else:
            true = np.zeros(n, dtype=bool)
            false = np.ones(n, dtype=bool)
            for v, k in parts:
                true |= k & v
                false &= k & ~v
        return true, true | false
    if isinstance(node, Not):
        v, k = _evaluate(node.operand, frame)
        return ~v & k, k
    if isinstance(node, Compare):
        return _compare(node.op, _operand(node.left, frame), _operand(node.right, frame))
    if isinstance(node, Between):
        x = _operand(node.operand, frame)
        lo_v, lo_k = _compare(">=", x, _operand(node.low, frame))
        hi_v, hi_k = _compare("<=", x, _operand(node.high, frame))
        known = (lo_k & hi_k) | (lo_k & ~lo_v) | (hi_k & ~hi_v)
        return lo_v & hi_v, known
    if isinstance(node, In):
        x = _operand(node.operand, frame)
        value = np.zeros(n, dtype=bool)
        for lit in node.values:
            v, _ = _compare("==", x, _operand(lit, frame))
            value |= v
        known = x.known
        if node.negate:
            value = ~value & known
        return value, known
    if isinstance(node, IsNull):
        x = _operand(node.operand, frame)
        value = x.known if node.negate else ~x.known
        return value, np.ones(n, dtype=bool)
    if isinstance(node, Name):
        return frame.truth(node.name)
    if isinstance(node, Literal):
        if node.value is None:
            return np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        return np.full(n, bool(node.value)), np.ones(n, dtype=bool)
    raise TypeError(f"not a rule node: {node!r}")  # pragma: no cover - the parser builds only the above


# --------------------------------------------------------------------------- public API
@dataclass(frozen=True)
class Rule:
    """A parsed rule; call :meth:`evaluate` on a feature frame.

    Parameters
    ----------
    text
        The rule source.
    tree
        Its syntax tree.
    """

    text: str
    tree: Node

    @property
    def features(self) -> tuple[str, ...]:
        """Names of the features the rule reads (each once, in source order)."""
        return tuple(dict.fromkeys(n.name for n in names_of(self.tree)))

    def evaluate(self, frame: pd.DataFrame | RuleFrame) -> np.ndarray:
        """Boolean vector, one entry per row of ``frame``; unknown counts as false.

        Pass a :class:`RuleFrame` when evaluating several rules over the same frame.
        """
        value, known = _evaluate(self.tree, frame if isinstance(frame, RuleFrame) else RuleFrame(frame))
        return value & known

    def __str__(self) -> str:
        return self.text


def parse_rule(text: str, *, where: str = "rule") -> Rule:
    """Parse a rule.

    Parameters
    ----------
    text
        Rule source, e.g. ``"age between 25 and 40 and urbanity == 'urban'"``.
    where
        What the rule belongs to (``"offer 'x' eligibility"``), used in errors.

    Raises
    ------
    RuleError
        With ``where``, the character position and a caret under the rule.
    """
    try:
        tree = _Parser(text).parse()
    except _SyntaxError as exc:
        raise RuleError(_located(where, exc.message, text, exc.pos)) from None
    return Rule(text, tree)


def check_names(rule: Rule, known: Iterable[str], *, where: str = "rule") -> None:
    """Fail when ``rule`` reads a feature outside ``known``.

    Raises
    ------
    RuleError
        Naming the first unknown feature, its position and close matches.
    """
    known = frozenset(known)
    for ref in names_of(rule.tree):
        if ref.name not in known:
            import difflib

            close = difflib.get_close_matches(ref.name, sorted(known), n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "; see `nextbest features list`"
            raise RuleError(_located(where, f"unknown feature {ref.name!r}{hint}", rule.text, ref.pos))


def _located(where: str, message: str, text: str, pos: int) -> str:
    return f"{where}: {message} at position {pos}\n    {text}\n    {' ' * pos}^"
