"""DuckDB SQL to Spark SQL with sqlglot, over an allow-list that fails loudly.

nextbest's SQL is written once, in DuckDB's dialect (the feature statement of
:mod:`nextbest.features.query`, the offer history, the training set). On Spark it
runs *transpiled*, never rewritten by hand. sqlglot translates most of it; what
it cannot carry over, or carries over with other semantics, is fixed here as AST
transforms:

* ``AS [NOT] MATERIALIZED`` CTE hints are dropped (Spark plans CTEs itself);
* ``to_years(n)`` / ``to_days(n)`` become ``make_ym_interval(n, 0)`` /
  ``make_dt_interval(n, 0, 0, 0)``: Spark adds those to a date or timestamp as
  DuckDB adds its intervals (month arithmetic clamps to the month's last day);
* ``round(x, n)`` becomes ``round(x * 10^n, 0) / 10^n``, DuckDB's rounding of
  doubles (Spark rounds the decimal representation, one value in a hundred near
  the half differently);
* ``date_diff('millisecond', a, b)`` becomes the difference of the floored
  epoch milliseconds, as DuckDB computes it (Spark's ``timestampdiff`` is off by
  one for sub-millisecond timestamps);
* decimal literals (``365.25``, ``86400000.0``) are cast to ``DOUBLE``: DuckDB
  computes ``x / 365.25`` in double precision, Spark in DECIMAL, which moves
  results by up to 5e-7;
* ``$name`` parameters are bound as typed literals (timestamps, numbers,
  strings, lists of them), so the Spark statement is self-contained;
* schema-qualified tables (``features.customer_snapshot``) name the temporary
  views ``features__customer_snapshot`` the lake registers.

Every node of the translated tree must be on :data:`ALLOWED_FUNCTIONS` or
:data:`ALLOWED_CONSTRUCTS`, each checked to mean the same on both engines (the
parity tests run the whole feature statement, the offer history and the training
set on both). Anything else raises :class:`TranspileError` naming the construct:
a new function in the feature SQL has to be checked and added here, not
translated silently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from nextbest.errors import NextbestError

READ = "duckdb"
WRITE = "spark"
#: Separator of a schema-qualified table's temporary view name on Spark.
VIEW_SEPARATOR = "__"

#: Functions (sqlglot expression types) whose Spark translation means what DuckDB's does.
ALLOWED_FUNCTIONS: frozenset[type[exp.Expression]] = frozenset({
    # aggregates
    exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.ArgMax, exp.ArgMin, exp.LogicalOr, exp.LogicalAnd,
    # window functions
    exp.RowNumber, exp.LastValue, exp.FirstValue,
    # scalar
    exp.Cast, exp.Coalesce, exp.If, exp.Case, exp.Nullif, exp.Greatest, exp.Least, exp.Round, exp.Ln, exp.Pow,
    exp.Abs, exp.Sqrt, exp.Exp, exp.Floor, exp.Ceil,
    # (not Concat: DuckDB skips NULL arguments, Spark returns NULL)
    exp.SplitPart, exp.StartsWith, exp.Substring, exp.Lower, exp.Upper, exp.DPipe,
    exp.Year, exp.Month, exp.Day, exp.ArrayContains, exp.Array, exp.Explode,
    exp.Exists, exp.And, exp.Or,
})
#: Named functions sqlglot keeps as ``Anonymous`` and Spark has under the same name and meaning.
ALLOWED_ANONYMOUS: frozenset[str] = frozenset({"make_ym_interval", "make_dt_interval", "unix_micros", "datediff"})
#: Everything else a statement may consist of: clauses, operators, literals, names.
ALLOWED_CONSTRUCTS: frozenset[type[exp.Expression]] = frozenset({
    exp.Select, exp.From, exp.Where, exp.Group, exp.Having, exp.Order, exp.Ordered, exp.Join, exp.With, exp.CTE,
    exp.Subquery, exp.Union, exp.Distinct, exp.Limit, exp.Filter, exp.Window, exp.WindowSpec, exp.IgnoreNulls,
    exp.Table, exp.TableAlias, exp.Alias, exp.Column, exp.Identifier, exp.Star, exp.Paren, exp.Tuple,
    exp.Literal, exp.Null, exp.Boolean, exp.DataType, exp.DataTypeParam, exp.Var,
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Neg, exp.Not,
    exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Is, exp.In, exp.Between,
})

#: Join kinds allowed (with any side: LEFT, RIGHT, FULL); methods such as ASOF or POSITIONAL are not.
JOIN_KINDS: frozenset[str] = frozenset({"INNER", "OUTER", "CROSS"})


class TranspileError(NextbestError):
    """A statement uses a construct off the allow-list (or sqlglot cannot translate it)."""


def transpile(sql: str, params: Mapping[str, Any] | None = None) -> str:
    """Spark SQL for the DuckDB statement ``sql`` with ``params`` bound.

    Raises
    ------
    TranspileError
        A function or construct off the allow-list, an unbound or unsupported
        parameter, or a statement sqlglot cannot parse or translate.
    """
    try:
        tree = sqlglot.parse_one(sql, read=READ)
    except SqlglotError as exc:
        raise TranspileError(f"sqlglot cannot parse the statement as {READ} SQL: {exc}") from exc
    tree = tree.transform(_rewrite, copy=False)
    tree = _bind(tree, params or {})
    check_allowed(tree)
    try:
        return tree.sql(dialect=WRITE, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise TranspileError(f"sqlglot cannot write the statement as {WRITE} SQL: {exc}") from exc


def check_allowed(tree: exp.Expression) -> None:
    """Raise :class:`TranspileError` on the first node off the allow-lists, naming it."""
    for node in tree.walk():
        kind = type(node)
        if kind is exp.Anonymous:
            if node.name.lower() not in ALLOWED_ANONYMOUS:
                raise TranspileError(
                    f"function {node.name}() is not on the Spark allow-list (in: {_snippet(node)}); check its "
                    "Spark meaning and add a rewrite or an entry in nextbest/spark/transpile.py"
                )
        elif kind is exp.Join and (node.args.get("method") or (node.text("kind") or "INNER").upper() not in JOIN_KINDS):
            join = " ".join(filter(None, (node.text("method"), node.text("side"), node.text("kind")))) or "?"
            raise TranspileError(
                f"{join.upper()} JOIN is not on the Spark allow-list (in: {_snippet(node)}); write it with "
                "inner, left, right, full or cross joins (an as-of match: nextbest/training/asof.py)"
            )
        elif kind not in ALLOWED_FUNCTIONS and kind not in ALLOWED_CONSTRUCTS:
            what = "function" if isinstance(node, exp.Func) else "construct"
            raise TranspileError(
                f"{what} {kind.__name__} is not on the Spark allow-list (in: {_snippet(node)}); check its Spark "
                "meaning and add a rewrite or an entry in nextbest/spark/transpile.py"
            )


def _snippet(node: exp.Expression) -> str:
    text = node.sql(dialect=READ)
    return text if len(text) <= 120 else text[:117] + "..."


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.CTE) and node.args.get("materialized") is not None:
        node.set("materialized", None)
        return node
    interval = _interval_function(node)
    if interval is not None:
        unit, n = interval
        n = n.transform(_rewrite)
        if unit == "to_years":
            return exp.Anonymous(this="make_ym_interval", expressions=[n, exp.Literal.number(0)])
        return exp.Anonymous(this="make_dt_interval", expressions=[n, *(exp.Literal.number(0) for _ in range(3))])
    if isinstance(node, exp.DateDiff):
        return _millisecond_diff(node)
    if isinstance(node, exp.Round) and node.args.get("decimals") is not None:
        return _round(node)
    if isinstance(node, exp.Literal) and not node.is_string and not _is_integer(node.this):
        if not isinstance(node.parent, exp.DataTypeParam):
            return exp.Cast(this=node.copy(), to=exp.DataType.build("DOUBLE"))
    if isinstance(node, exp.Table) and node.args.get("db") is not None and not node.args.get("catalog"):
        view = f"{node.db}{VIEW_SEPARATOR}{node.name}"
        alias = node.args.get("alias")
        table = exp.Table(this=exp.to_identifier(view))
        if alias is not None:
            table.set("alias", alias)
        return table
    return node


def _round(node: exp.Round) -> exp.Expression:
    """DuckDB's ``round(x, n)`` on doubles: ``std::round(x * 10^n) / 10^n``.

    Spark rounds the shortest decimal representation of ``x`` half-up instead,
    which differs right at the half (one value in a hundred near it): a 1e-9 flip
    of a feature rounded to 9 decimals. ``round(m, 0)`` of the scaled value agrees
    with ``std::round`` (a double is printed as ``k.5`` only when it is exactly that).
    """
    decimals = node.args["decimals"]
    if not (isinstance(decimals, exp.Literal) and _is_integer(decimals.this)) or int(decimals.this) < 0:
        raise TranspileError(f"round() with decimals {decimals.sql(dialect=READ)} is not on the Spark allow-list "
                             f"(in: {_snippet(node)}); use a non-negative integer literal")
    scale = _double(10.0 ** int(decimals.this))
    scaled = exp.Mul(this=exp.Paren(this=node.this.transform(_rewrite)), expression=scale)
    return exp.Paren(this=exp.Div(this=exp.Round(this=scaled, decimals=exp.Literal.number(0)),
                                  expression=scale.copy()))


def _interval_function(node: exp.Expression) -> tuple[str, exp.Expression] | None:
    """``(name, argument)`` of a ``to_years(n)`` / ``to_days(n)`` call (sqlglot parses the second as ``ToDays``)."""
    if isinstance(node, exp.ToDays):
        return "to_days", node.this
    if isinstance(node, exp.Anonymous) and node.name.lower() in ("to_years", "to_days") and len(node.expressions) == 1:
        return node.name.lower(), node.expressions[0]
    return None


def _millisecond_diff(node: exp.DateDiff) -> exp.Expression:
    """DuckDB's ``date_diff(unit, a, b)`` on Spark, for the units nextbest uses.

    ``'day'``: the dates' difference. ``'millisecond'``: ``epoch_ms(b) - epoch_ms(a)``,
    each floored to the millisecond.

    Spark's ``timestampdiff`` truncates the *difference* instead, which is one
    millisecond off for timestamps with sub-millisecond parts.
    """
    unit = node.text("unit").lower()
    if unit in ("day", "days", "d"):
        # Day boundaries crossed = the difference of the dates, as Spark's datediff counts them.
        return exp.Anonymous(this="datediff", expressions=[
            exp.Cast(this=arg.transform(_rewrite), to=exp.DataType.build("DATE"))
            for arg in (node.this, node.expression)])
    if unit not in ("millisecond", "milliseconds", "ms"):
        raise TranspileError(
            f"date_diff unit {unit!r} is not on the Spark allow-list (in: {_snippet(node)}); "
            "use date_diff('millisecond', ...) or add a rewrite in nextbest/spark/transpile.py"
        )

    def epoch_ms(arg: exp.Expression) -> exp.Expression:
        micros = exp.Anonymous(this="unix_micros", expressions=[
            exp.Cast(this=arg.transform(_rewrite), to=exp.DataType.build("TIMESTAMP"))])
        # Exact in double precision: |micros| < 2**53, and a non-integer quotient is
        # at least 0.001 from the next integer, far above the spacing of doubles there.
        return exp.Floor(this=exp.Div(this=micros, expression=_double(1000)))

    return exp.Paren(this=exp.Sub(this=epoch_ms(node.this), expression=epoch_ms(node.expression)))


def _double(value: float) -> exp.Expression:
    return exp.Cast(this=exp.Literal.number(repr(float(value))), to=exp.DataType.build("DOUBLE"))


def _is_integer(text: str) -> bool:
    return text.lstrip("-").isdigit()


def view_name(qualified: str) -> str:
    """The Spark temporary view of a warehouse table name (``features.x`` -> ``features__x``)."""
    schema, _, name = qualified.rpartition(".")
    return f"{schema}{VIEW_SEPARATOR}{name}" if schema and schema != "main" else name


def _bind(tree: exp.Expression, params: Mapping[str, Any]) -> exp.Expression:
    def bind(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder):
            name = node.name
            if not name or name not in params:
                raise TranspileError(f"parameter ${name or '?'} is not bound; pass it by name")
            return to_literal(params[name], name)
        return node

    return tree.transform(bind, copy=False)


def to_literal(value: Any, name: str = "value") -> exp.Expression:
    """A typed SQL literal for a parameter value."""
    if value is None:
        return exp.Null()
    if isinstance(value, (bool, np.bool_)):
        return exp.Boolean(this=bool(value))
    if isinstance(value, (int, np.integer)):
        return exp.Literal.number(int(value))
    if isinstance(value, (float, np.floating)):
        return exp.Cast(this=exp.Literal.number(repr(float(value))), to=exp.DataType.build("DOUBLE"))
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert(None)
        return exp.Cast(this=exp.Literal.string(stamp.isoformat(sep=" ")), to=exp.DataType.build("TIMESTAMP"))
    if isinstance(value, dt.date):
        return exp.Cast(this=exp.Literal.string(value.isoformat()), to=exp.DataType.build("DATE"))
    if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes)):
        return exp.Array(expressions=[to_literal(v, name) for v in value])
    raise TranspileError(f"parameter ${name}: values of type {type(value).__name__} cannot be bound on Spark")
