"""Mappings: load a file in someone else's layout into the data contract, without code.

A mapping (YAML) names, for each warehouse table the file feeds, the rows to take
(``where``, an SQL condition) and every contract column as a DuckDB SQL expression
over the file's columns: a bare column name renames, anything else derives::

    description: Our CRM export
    tables:
      - table: customers
        columns:
          customer_id: cust_no                    # a rename
          urbanity: lower(area_type)              # a derivation
          member_since: strptime(joined, '%d/%m/%Y')::DATE
      - table: transactions
        where: amount_eur > 0
        columns: {customer_id: cust_no, ts: order_time, order_id: "'crm-' || order_no", amount: amount_eur}

The file is read once with DuckDB's type detection; ``_row`` is its data-row number
(1 = the first row after the header). Each table's rows then go through exactly the
checks of a plain import (types, vocabularies, keys, references), reported with the
file's row numbers, and all tables are written in one transaction: all or nothing.

Expressions are checked once before anything runs: one that does not bind (an unknown
column or function) or fails on a value names the mapping field (``tables[0].columns.
urbanity``) and the column. An expression is a single SQL expression evaluated by the
warehouse's own DuckDB connection: a mapping is trusted configuration, like the config.
"""

from __future__ import annotations

import datetime as dt
import time
from contextlib import nullcontext, suppress
import uuid
from pathlib import Path

import duckdb
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from nextbest.warehouse.attributes import ensure_attribute_columns
from nextbest.warehouse.db import transaction
from nextbest.warehouse.importer import (
    ImportResult,
    file_format,
    insert_staged,
    read_source,
    rejection_message,
    stage_and_check,
    table_spec,
)
from nextbest.warehouse.schema import IMPORTABLE
from nextbest.warehouse.validation import Problem, structural_problems

from nextbest.config import NextbestConfig
from nextbest.errors import BadInputError

#: The name expressions use for the file's 1-based data-row number.
ROW = "_row"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TableMapping(_Frozen):
    """The rows of one warehouse table, derived from the file."""

    table: str = Field(description="Target table, one of the importable contract tables.")
    where: str | None = Field(default=None, description="SQL condition over the file's columns: rows to take.")
    columns: dict[str, str] = Field(
        min_length=1, description="Contract column -> DuckDB SQL expression over the file's columns."
    )

    @field_validator("table")
    @classmethod
    def _importable(cls, v: str) -> str:
        if v not in IMPORTABLE:
            raise ValueError(f"unknown table {v!r}; use one of {', '.join(IMPORTABLE)}")
        return v

    @field_validator("columns")
    @classmethod
    def _expressions(cls, v: dict[str, str]) -> dict[str, str]:
        for name, expr in v.items():
            if not isinstance(expr, str) or not expr.strip():
                raise ValueError(f"column {name!r}: write an SQL expression (a quoted YAML string), e.g. {name}: my_{name}")
        return v


class Mapping(_Frozen):
    """A file layout mapped onto the contract: one :class:`TableMapping` per table, written in order."""

    description: str = ""
    tables: tuple[TableMapping, ...] = Field(min_length=1)


def load_mapping(path: Path | str) -> Mapping:
    """Parse and validate a mapping file.

    Raises
    ------
    BadInputError
        Naming the file, the field (``tables[1].columns``) and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"mapping {path} does not exist. Fix: check the path")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BadInputError(f"mapping {path.name}: not valid YAML ({exc}). Fix: correct the syntax") from exc
    if isinstance(raw, dict) and isinstance(raw.get("tables"), list):
        for item in raw["tables"]:
            if isinstance(item, dict) and isinstance(item.get("columns"), dict):
                # YAML reads `consent_email: true` as a boolean; as an expression it is the SQL literal.
                item["columns"] = {k: _scalar_text(v) for k, v in item["columns"].items()}
    try:
        return Mapping.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        lines = []
        errors = exc.errors()
        # A list whose every item failed also reports "too short"; the items' own errors say it all.
        errors = [e for e in errors if e["type"] != "too_short" or len(errors) == 1]
        for err in errors:
            loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
            lines.append(f"{loc or 'mapping'}: {err['msg'].removeprefix('Value error, ')}")
        raise BadInputError(f"invalid mapping {path.name}:\n  " + "\n  ".join(lines)) from exc


def _scalar_text(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    return value


def import_mapped(
    con: duckdb.DuckDBPyConnection,
    mapping: Mapping,
    path: Path | str,
    config: NextbestConfig,
    *,
    upsert: bool = False,
    now: dt.datetime | None = None,
    mapping_name: str = "mapping",
) -> list[ImportResult]:
    """Read ``path``, derive every mapped table and load them all, or nothing.

    Parameters
    ----------
    con
        A read-write warehouse connection.
    mapping
        From :func:`load_mapping`.
    path
        A CSV or Parquet file in the mapping's layout.
    config
        As for :func:`~nextbest.warehouse.importer.import_file`.
    upsert
        Update rows whose key exists (tables with a key), as ``--upsert``.
    now
        Reference time of the ``not_future`` checks.
    mapping_name
        How messages name the mapping (its file name).

    Returns
    -------
    list of ImportResult
        One per mapped table, in mapping order.

    Raises
    ------
    BadInputError
        A mapping field that does not fit the file or the contract (naming the field and
        the column), or rows failing the contract's checks; nothing was written.
    """
    path = Path(path)
    fmt = file_format(path)
    raw = f"_nb_source_{uuid.uuid4().hex[:12]}"
    read_source(con, raw, path, fmt, typed=True)
    try:
        return load_relation(con, mapping, raw, config, upsert=upsert, now=now, mapping_name=mapping_name,
                             path=path, fmt=fmt)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {raw}")


def load_frame(
    con: duckdb.DuckDBPyConnection,
    mapping: Mapping,
    frame: pd.DataFrame,
    config: NextbestConfig,
    *,
    now: dt.datetime | None = None,
    mapping_name: str = "mapping",
    path: Path | None = None,
    in_transaction: bool = False,
) -> list[ImportResult]:
    """:func:`import_mapped` on rows already read (e.g. a file validated by a dedicated reader).

    ``in_transaction``: the caller holds a transaction that the loads join (and commits
    with rows of its own); otherwise they get their own.
    """
    raw = f"_nb_source_{uuid.uuid4().hex[:12]}"
    con.register("_nb_frame", frame)
    try:
        # A fresh table's rowids follow the frame's order (see _numbered).
        con.execute(f"CREATE TEMP TABLE {raw} AS SELECT * FROM _nb_frame")
    finally:
        con.unregister("_nb_frame")
    try:
        return load_relation(con, mapping, raw, config, now=now, mapping_name=mapping_name,
                             path=path or Path("<rows>"), fmt="csv", in_transaction=in_transaction)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {raw}")


def load_relation(
    con: duckdb.DuckDBPyConnection,
    mapping: Mapping,
    raw: str,
    config: NextbestConfig,
    *,
    upsert: bool = False,
    now: dt.datetime | None = None,
    mapping_name: str = "mapping",
    path: Path,
    fmt: str,
    in_transaction: bool = False,
) -> list[ImportResult]:
    """Map the temporary table ``raw`` (the file's rows, in order) and load every table in one transaction
    (the caller's, when ``in_transaction``)."""
    now = now or max(dt.datetime.now(), dt.datetime.now(dt.UTC).replace(tzinfo=None))
    specs = [table_spec(t.table, config) for t in mapping.tables]
    for i, (target, spec) in enumerate(zip(mapping.tables, specs, strict=True)):
        problems = structural_problems(spec, list(target.columns), upsert=upsert)
        if problems:
            raise BadInputError(
                f"{mapping_name}: tables[{i}] ({spec.name}) does not fit the data contract:\n"
                + "\n".join(f"  - {p.message()}" for p in problems)
            )
        if upsert and not spec.key:
            raise BadInputError(
                f"{mapping_name}: tables[{i}]: --upsert needs tables with a key; {spec.name} has none. "
                "Fix: import without --upsert"
            )
        _check_expressions(con, raw, target, i, mapping_name)
    if any(s.name == "customers" for s in specs):
        ensure_attribute_columns(con, config)
    results = []
    staged_tables: list[str] = []
    try:
        with nullcontext() if in_transaction else transaction(con):
            for i, (target, spec) in enumerate(zip(mapping.tables, specs, strict=True)):
                started = time.perf_counter()
                tag = uuid.uuid4().hex[:12]
                mapped, staged = f"_nb_mapped_{tag}", f"_nb_staged_{tag}"
                staged_tables += [mapped, staged]
                _derive(con, raw, mapped, target, i, mapping_name)
                columns = list(target.columns)
                problems: list[Problem] = stage_and_check(con, mapped, staged, spec, columns, config, now,
                                                          upsert=upsert, numbered=True)
                if problems:
                    raise BadInputError(
                        rejection_message(spec, path, problems)
                        + f"\n  (columns derived by {mapping_name} tables[{i}]; rows are the file's data rows)"
                    )
                rows = con.execute(f"SELECT count(*) FROM {staged}").fetchone()[0]
                insert_staged(con, staged, spec, columns, upsert=upsert)
                results.append(ImportResult(spec.name, path, fmt, int(rows),  # type: ignore[arg-type]
                                            time.perf_counter() - started, upsert))
    finally:
        # In a caller's transaction that a DuckDB error aborted, the drop fails; the rollback removes them.
        with suppress(duckdb.TransactionException):
            for name in staged_tables:
                con.execute(f"DROP TABLE IF EXISTS {name}")
    return results


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _probe(con: duckdb.DuckDBPyConnection, sql: str, field: str, expr: str, mapping_name: str) -> None:
    """Run ``sql`` (one statement, or the expression smuggles in another); on error, name the field."""
    try:
        if len(con.extract_statements(sql)) != 1:
            raise BadInputError(f"{mapping_name}: {field}: {expr!r} is not a single SQL expression. "
                                "Fix: write one expression (no ';' or subsequent statements)")
        con.execute(sql)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0].rstrip(".!")
        raise BadInputError(
            f"{mapping_name}: {field}: expression {expr!r} failed: {first}. "
            f"Fix: correct the expression; it may use the file's columns and {ROW} (the data-row number)"
        ) from None


def _numbered(raw: str) -> str:
    """``raw`` with its data-row numbers as :data:`ROW`.

    A fresh table's rowids follow insertion (file) order, but a table created inside a
    transaction numbers them from a large offset: count from the smallest.
    """
    return f"(SELECT rowid - (SELECT min(rowid) FROM {raw}) + 1 AS {ROW}, * FROM {raw})"


def _check_expressions(con: duckdb.DuckDBPyConnection, raw: str, target: TableMapping, i: int,
                       mapping_name: str) -> None:
    """Bind every expression (unknown columns, functions, syntax), then evaluate it on every row."""
    source = _numbered(raw)
    where = f" WHERE ({target.where})" if target.where else ""
    if target.where:
        _probe(con, f"SELECT count(*) FROM {source} WHERE ({target.where})", f"tables[{i}].where", target.where,
               mapping_name)
    for name, expr in target.columns.items():
        _probe(con, f"SELECT ({expr}) AS x FROM {source} LIMIT 0", f"tables[{i}].columns.{name}", expr, mapping_name)
    # Then every value, in one scan; only when a value fails is each expression run alone, to name it.
    try:
        con.execute(f"SELECT {', '.join(f'count(({e}))' for e in target.columns.values())} FROM {source}{where}")
    except duckdb.Error as exc:
        for name, expr in target.columns.items():
            _probe(con, f"SELECT count(({expr})) FROM {source}{where}", f"tables[{i}].columns.{name}", expr,
                   mapping_name)
        raise BadInputError(f"{mapping_name}: tables[{i}] ({target.table}): {str(exc).splitlines()[0]}. "
                            "Fix: correct the mapping's expressions") from None


def _derive(con: duckdb.DuckDBPyConnection, raw: str, mapped: str, target: TableMapping, i: int,
            mapping_name: str) -> None:
    select = ", ".join(f"({expr}) AS {_quote(name)}" for name, expr in target.columns.items())
    where = f" WHERE ({target.where})" if target.where else ""
    try:
        con.execute(
            f"CREATE TEMP TABLE {mapped} AS SELECT {ROW}, {select} "
            f"FROM {_numbered(raw)}{where} ORDER BY {ROW}"
        )
    except duckdb.Error as exc:  # checked one by one above; only a combination can fail here
        raise BadInputError(f"{mapping_name}: tables[{i}] ({target.table}): {str(exc).splitlines()[0]}. "
                            "Fix: correct the mapping's expressions") from None
