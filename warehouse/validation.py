"""Set-based validation of a staged import file against the data contract.

Each check is one SQL query over the staging table that returns how many rows
fail, the first few (1-based data-row numbers, as in the file) and an example
value, so even a million-row file is checked in a few vectorised scans. The
checks only *find* problems; :mod:`nextbest.warehouse.importer` decides that
any problem rejects the whole file.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import duckdb
from nextbest.warehouse.schema import Column, Table

from nextbest.config import NextbestConfig

#: How many offending row numbers a message lists.
MAX_ROWS_SHOWN = 5

#: How to write a value of each DuckDB type in a file (the fix of a type error).
TYPE_FIXES: dict[str, str] = {
    "BIGINT": "write whole numbers, e.g. 12345",
    "DOUBLE": "write plain numbers with a dot as decimal separator, e.g. 12.50",
    "DATE": "write dates as ISO 8601 YYYY-MM-DD, e.g. 2024-05-01",
    "TIMESTAMP": "write timestamps as ISO 8601 'YYYY-MM-DD HH:MM:SS' (or a date), e.g. 2024-05-01 13:45:00",
    "BOOLEAN": "write true/false (1/0 also works)",
}


@dataclass(frozen=True)
class Problem:
    """One reason a file cannot be imported.

    Attributes
    ----------
    table, column
        Where the problem is; ``column`` is None for file-level problems.
    what
        What is wrong, phrased to follow "N row(s)" (or standalone when ``count`` is 0).
    fix
        What the user should do about it.
    count
        Offending rows (0 for structural problems such as a missing column).
    rows
        The first offending 1-based data-row numbers.
    example
        An offending value (never shown for personal columns).
    """

    table: str
    column: str | None
    what: str
    fix: str
    count: int = 0
    rows: tuple[int, ...] = ()
    example: str | None = None

    def message(self) -> str:
        """One line naming table, column, rows and the fix."""
        where = f"{self.table}.{self.column}" if self.column else self.table
        if not self.count:
            return f"{where}: {self.what}. Fix: {self.fix}"
        more = ", ..." if self.count > len(self.rows) else ""
        rows = f"row{'s' if len(self.rows) > 1 else ''} {', '.join(map(str, self.rows))}{more}"
        example = f"; e.g. {self.example!r}" if self.example is not None else ""
        return f"{where}: {self.count:,} row(s) {self.what} ({rows}{example}). Fix: {self.fix}"


def structural_problems(table: Table, file_columns: Sequence[str], *, upsert: bool = False) -> list[Problem]:
    """Unknown and missing columns; row checks only make sense once these pass.

    Unknown columns are rejected rather than ignored: a misspelt optional
    column (``consent_emial``) would otherwise silently load as "no consent".
    """
    problems: list[Problem] = []
    known = table.column_names
    seen: set[str] = set()
    for name in file_columns:
        if name in seen:
            problems.append(Problem(table.name, name, "appears twice in the header", "keep one column of that name"))
        seen.add(name)
    unknown = [c for c in file_columns if c not in known]
    if unknown:
        hints = []
        for c in unknown:
            close = difflib.get_close_matches(c, known, n=1)
            hints.append(f"{c!r} (did you mean {close[0]!r}?)" if close else repr(c))
        problems.append(
            Problem(
                table.name,
                None,
                f"unknown column(s) {', '.join(hints)}",
                f"rename them to columns of {table.name} ({', '.join(known)}) or drop them "
                "(docs/data-model.md lists every column)"
                + (
                    "; a column of your own can be declared in features.yaml `attributes` "
                    "(docs/own-data.md, 'Your own attributes')"
                    if table.name == "customers" else ""
                ),
            )
        )
    missing = [c for c in _must_be_present(table, upsert) if c not in file_columns]
    if missing:
        problems.append(
            Problem(
                table.name,
                ", ".join(missing),
                f"required column(s) missing: {', '.join(missing)}",
                "add the column(s) to the file's header and fill them on every row",
            )
        )
    return problems


def _must_be_present(table: Table, upsert: bool) -> tuple[str, ...]:
    # An upsert may update a subset of columns, but the key must identify the rows.
    return tuple(dict.fromkeys(table.key)) if upsert else table.required


def raw_problems(con: duckdb.DuckDBPyConnection, raw: str, table: Table, file_columns: Sequence[str], *,
                 numbered: bool = False) -> list[Problem]:
    """Empty required cells and values that do not convert to the column's type.

    Checked on ``raw`` (the file as read) so that a value failing its type is
    reported as such, not as empty. ``numbered``: ``raw`` has a ``_row`` column
    (data-row numbers); otherwise its insertion order gives them.
    """
    source_types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {raw})").fetchall())
    relation = raw if numbered else f"(SELECT rowid + 1 AS _row, * FROM {raw})"
    problems = []
    for name in file_columns:
        col = table.column(name)
        q = _quote(name)
        if col.required or (col.name in table.key and col.default is None):
            found = offending(con, relation, f"{q} IS NULL", "NULL", col)
            if found:
                problems.append(
                    Problem(table.name, name, "are empty but the column is required", "fill it on every row", *found)
                )
        if col.type == "VARCHAR" or source_types.get(name) == col.type:
            continue
        bad = f"{q} IS NOT NULL AND TRY_CAST({q} AS {col.type}) IS NULL"
        if col.type in {"BIGINT", "INTEGER"}:
            # TRY_CAST rounds '1.5' to 2; an id must be integral.
            bad = f"({bad}) OR TRY_CAST({q} AS DOUBLE) <> TRY_CAST({q} AS {col.type})"
        found = offending(con, relation, bad, q, col)
        if found:
            problems.append(
                Problem(table.name, name, f"are not a valid {col.type}", TYPE_FIXES.get(col.type, ""), *found)
            )
    return problems


def value_problems(
    con: duckdb.DuckDBPyConnection,
    staged: str,
    table: Table,
    file_columns: Sequence[str],
    config: NextbestConfig,
    now: dt.datetime,
    *,
    upsert: bool = False,
) -> list[Problem]:
    """Row checks on the typed staging table: nulls, vocabularies, ranges, keys, references."""
    problems: list[Problem] = []
    cols = [table.column(c) for c in file_columns]
    for col in cols:
        problems.extend(_column_problems(con, staged, table, col, config, now))
    if table.key:
        problems.extend(_duplicate_key_problems(con, staged, table, upsert=upsert))
    else:
        problems.extend(_reimport_problems(con, staged, table))
    for fk in table.references:
        q = _quote(fk.column)
        where = (
            f"s.{q} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {fk.ref_table} r WHERE r.{_quote(fk.ref_column)} = s.{q})"
        )
        found = offending(con, f"{staged} s", where, f"s.{q}", table.column(fk.column))
        if found:
            fix = (
                "import these customers into 'customers' first (a file with only a customer_id column is "
                "enough), or drop the rows"
                if fk.ref_table == "customers"
                else f"import the {fk.ref_table} rows first, or drop these rows"
            )
            problems.append(Problem(table.name, fk.column, f"name a {fk.column} not in {fk.ref_table}", fix, *found))
    return problems


def _column_problems(
    con: duckdb.DuckDBPyConnection,
    staged: str,
    table: Table,
    col: Column,
    config: NextbestConfig,
    now: dt.datetime,
) -> Iterable[Problem]:
    q = _quote(col.name)
    well_formed = f"{q} IS NOT NULL"
    if col.pattern:
        found = offending(
            con, staged, f"{q} IS NOT NULL AND NOT regexp_full_match({q}, {_literal(col.pattern)})", q, col
        )
        if found:
            yield Problem(table.name, col.name, "are malformed", f"write {col.pattern_hint or col.pattern}", *found)
        # Malformed values are reported once, above, not again as outside the vocabulary.
        well_formed = f"regexp_full_match({q}, {_literal(col.pattern)})"
    if col.allowed:
        found = offending(con, staged, f"{well_formed} AND {q} NOT IN ({_literals(col.allowed)})", q, col)
        if found:
            fix = f"use one of {', '.join(col.allowed)}" + ("" if col.required else ", or leave it empty for unknown")
            yield Problem(table.name, col.name, "hold a value outside the allowed vocabulary", fix, *found)
    if col.vocabulary:
        ids, source = _config_vocabulary(col, config)
        value = f"split_part({q}, '.', 1)" if col.vocabulary == "family" else q
        found = offending(con, staged, f"{well_formed} AND {value} NOT IN ({_literals(ids)})", q, col)
        if found:
            what = (
                "have an unknown family (the part before the first dot)"
                if col.vocabulary == "family"
                else (f"name a {col.vocabulary} that is not in the config")
            )
            yield Problem(
                table.name,
                col.name,
                what,
                f"use one of {', '.join(ids)}, or add it to {source}",
                *found,
            )
    if col.min_value is not None:
        found = offending(con, staged, f"{q} < {col.min_value!r}", q, col)
        if found:
            yield Problem(
                table.name, col.name, f"are below the minimum {col.min_value:g}", "correct the values", *found
            )
    if col.not_future:
        limit = f"{now:%Y-%m-%d}" if col.type == "DATE" else f"{now:%Y-%m-%d %H:%M:%S}"
        found = offending(con, staged, f"{q} > {col.type} '{limit}'", q, col)
        if found:
            yield Problem(
                table.name,
                col.name,
                f"lie in the future (after {limit})",
                "correct the dates (day and month swapped?) or drop the rows",
                *found,
            )


def _duplicate_key_problems(
    con: duckdb.DuckDBPyConnection, staged: str, table: Table, *, upsert: bool
) -> Iterable[Problem]:
    keys = ", ".join(_quote(k) for k in table.key)
    shown = _key_label(table)
    label = f"({', '.join(table.key)})" if len(table.key) > 1 else table.key[0]
    # Rows with an empty or unreadable key were reported already.
    complete = " AND ".join(f"{_quote(k)} IS NOT NULL" for k in table.key)
    dup = f"(SELECT *, count(*) OVER (PARTITION BY {keys}) AS _n FROM {staged} WHERE {complete})"
    found = offending(con, dup, "_n > 1", shown, None)
    if found:
        yield Problem(
            table.name, ", ".join(table.key), f"repeat a {label} within the file", f"keep one row per {label}", *found
        )
    if upsert:
        return
    match = " AND ".join(f"t.{_quote(k)} = s.{_quote(k)}" for k in table.key)
    found = offending(
        con, f"{staged} s", f"EXISTS (SELECT 1 FROM {table.name} t WHERE {match})", _key_label(table, "s."), None
    )
    if found:
        yield Problem(
            table.name,
            ", ".join(table.key),
            f"have a {label} already in the warehouse",
            "drop the rows already imported, or re-run with --upsert to update them",
            *found,
        )


def _reimport_problems(con: duckdb.DuckDBPyConnection, staged: str, table: Table) -> Iterable[Problem]:
    # Without a key, re-importing a file would silently double every event.
    same = " AND ".join(f"t.{_quote(c)} IS NOT DISTINCT FROM s.{_quote(c)}" for c in table.column_names)
    found = offending(con, f"{staged} s", f"EXISTS (SELECT 1 FROM {table.name} t WHERE {same})", "NULL", None)
    if found:
        last = con.execute(f"SELECT max(ts) FROM {table.name}").fetchone()[0]
        yield Problem(
            table.name,
            None,
            "are identical to rows already in the warehouse",
            f"the file (or part of it) was imported before; import only new rows, e.g. those after the latest "
            f"ts already loaded ({last})",
            *found,
        )


def offending(
    con: duckdb.DuckDBPyConnection, relation: str, where: str, value: str, col: Column | None
) -> tuple[int, tuple[int, ...], str | None] | None:
    """Count, first row numbers and an example value of the rows of ``relation`` matching ``where``.

    ``relation`` must have a 1-based ``_row`` column. Returns None when no row matches.
    """
    shown = "NULL" if (col is not None and col.personal) else f"CAST({value} AS VARCHAR)"
    rows = con.execute(
        f"SELECT count(*) OVER (), _row, {shown} FROM {relation} WHERE {where} ORDER BY _row LIMIT {MAX_ROWS_SHOWN}"
    ).fetchall()
    if not rows:
        return None
    return int(rows[0][0]), tuple(int(r[1]) for r in rows), rows[0][2]


def _key_label(table: Table, prefix: str = "") -> str:
    parts = ", ".join(f"CAST({prefix}{_quote(k)} AS VARCHAR)" for k in table.key)
    return f"concat_ws(', ', {parts})"


def _config_vocabulary(col: Column, config: NextbestConfig) -> tuple[tuple[str, ...], str]:
    """The allowed ids and the config file (and field) that lists them."""
    if col.vocabulary == "channel":
        return tuple(c.id for c in config.channels.channels), "channels.yaml"
    if col.vocabulary == "family":
        return config.features.families, "features.yaml `families`"
    raise ValueError(f"unknown vocabulary {col.vocabulary!r} on column {col.name}")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _literals(values: Iterable[str]) -> str:
    return ", ".join(_literal(v) for v in values)
