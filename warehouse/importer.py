"""Import CSV and Parquet files into the warehouse: validate everything, then load atomically.

The file is read into a temporary staging table (connection-local, never
written to the warehouse file), checked against the declared schema with
set-based SQL (:mod:`nextbest.warehouse.validation`), and only if no check
fails copied into the target with one ``INSERT ... SELECT`` inside a
transaction. Any problem rejects the whole file with a :class:`BadInputError`
listing every problem found, and leaves the warehouse unchanged.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
from nextbest.warehouse.attributes import customers_table, ensure_attribute_columns
from nextbest.warehouse.db import transaction
from nextbest.warehouse.schema import IMPORTABLE, TABLES, Table
from nextbest.warehouse.validation import Problem, raw_problems, structural_problems, value_problems

from nextbest.config import NextbestConfig
from nextbest.errors import BadInputError

FileFormat = Literal["csv", "parquet"]

#: File name endings and the reader for each.
SUFFIXES: dict[str, FileFormat] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class ImportResult:
    """What an import did."""

    table: str
    path: Path
    format: FileFormat
    rows: int  # rows in the file, all inserted or updated
    seconds: float
    upsert: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "file": str(self.path),
            "format": self.format,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "upsert": self.upsert,
        }


def import_file(
    con: duckdb.DuckDBPyConnection,
    table: str,
    path: Path | str,
    config: NextbestConfig,
    *,
    upsert: bool = False,
    now: dt.datetime | None = None,
) -> ImportResult:
    """Validate ``path`` against ``table``'s schema and load it, all or nothing.

    Parameters
    ----------
    con
        A read-write warehouse connection (tables created, see ``db.connect``).
    table
        Target table, one of :data:`~nextbest.warehouse.schema.IMPORTABLE`.
    path
        A CSV (header row required; delimiter sniffed) or Parquet file.
    config
        Source of the vocabularies that live in the config (channel ids,
        interaction families).
    upsert
        For tables with a key: rows whose key exists update the columns present
        in the file (others keep their values) instead of being rejected.
    now
        Reference time for ``not_future`` columns; defaults to the later of the
        local and the UTC clock, as timestamps carry no zone.

    Returns
    -------
    ImportResult

    Raises
    ------
    BadInputError
        Listing every problem (table, column, first row numbers, fix); nothing
        was written.
    """
    started = time.perf_counter()
    spec = table_spec(table, config)
    path = Path(path)
    fmt = file_format(path)
    if upsert and not spec.key:
        raise BadInputError(f"--upsert needs a table with a key; {spec.name} has none. Fix: import without --upsert")
    now = now or max(dt.datetime.now(), dt.datetime.now(dt.UTC).replace(tzinfo=None))
    tag = uuid.uuid4().hex[:12]
    raw, staged = f"_nb_raw_{tag}", f"_nb_staged_{tag}"
    try:
        if spec.name == "customers":
            ensure_attribute_columns(con, config)
        read_source(con, raw, path, fmt)
        columns = _normalise_header(con, raw)
        problems = structural_problems(spec, columns, upsert=upsert)
        if not problems:  # row checks need the declared columns
            problems = stage_and_check(con, raw, staged, spec, columns, config, now, upsert=upsert)
        if problems:
            raise BadInputError(rejection_message(spec, path, problems))
        rows = con.execute(f"SELECT count(*) FROM {staged}").fetchone()[0]
        with transaction(con):
            insert_staged(con, staged, spec, columns, upsert=upsert)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {raw}")
        con.execute(f"DROP TABLE IF EXISTS {staged}")
    return ImportResult(spec.name, path, fmt, int(rows), time.perf_counter() - started, upsert)


def file_format(path: Path) -> FileFormat:
    """The reader for ``path``, from its name; :class:`BadInputError` if unsupported or absent."""
    if not path.is_file():
        raise BadInputError(f"file {path} does not exist. Fix: check the path")
    if path.stat().st_size == 0:
        raise BadInputError(f"file {path.name} is empty. Fix: export the data with a header row")
    name = path.name.lower()
    for suffix, fmt in sorted(SUFFIXES.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(suffix):
            return fmt
    raise BadInputError(
        f"file {path.name}: unsupported file type. Fix: export as CSV (with a header row) or Parquet, "
        f"named *{', *'.join(SUFFIXES)}"
    )


def rejection_message(table: Table, path: Path, problems: list[Problem]) -> str:
    """The user-facing text of a rejected import."""
    lines = "\n".join(f"  - {p.message()}" for p in problems)
    return (
        f"cannot import {path.name} into table '{table.name}' ({len(problems)} problem(s)); "
        f"nothing was written. Row numbers count data rows from 1, after the header.\n{lines}"
    )


def table_spec(name: str, config: NextbestConfig) -> Table:
    """The contract of importable table ``name``; ``customers`` with the declared attributes."""
    if name not in IMPORTABLE:
        raise BadInputError(f"--table {name!r} is not an importable table. Fix: use one of {', '.join(IMPORTABLE)}")
    return customers_table(config) if name == "customers" else TABLES[name]


def stage_and_check(
    con: duckdb.DuckDBPyConnection,
    raw: str,
    staged: str,
    spec: Table,
    columns: list[str],
    config: NextbestConfig,
    now: dt.datetime,
    *,
    upsert: bool = False,
    numbered: bool = False,
) -> list[Problem]:
    """Row checks of ``raw`` (the file's rows), typed into the temporary table ``staged``.

    ``raw`` is dropped once staged. ``numbered``: ``raw`` carries the data-row numbers in a
    ``_row`` column (a mapping's derived rows), rather than in its insertion order.
    """
    problems = raw_problems(con, raw, spec, columns, numbered=numbered)
    _stage(con, raw, staged, spec, columns, numbered=numbered)
    con.execute(f"DROP TABLE {raw}")
    return problems + value_problems(con, staged, spec, columns, config, now, upsert=upsert)


def read_source(con: duckdb.DuckDBPyConnection, raw: str, path: Path, fmt: FileFormat, *, typed: bool = False) -> None:
    """Read ``path`` into the temporary table ``raw``, in file order.

    ``typed`` lets DuckDB detect CSV column types (for a mapping's expressions);
    otherwise CSV cells stay text, for the contract's checks.
    """
    source = "'" + str(path).replace("'", "''") + "'"
    # CSV cells are read as text so that a bad value is reported with its row,
    # instead of failing the whole read (or being guessed into another type).
    text = "" if typed else ", all_varchar = true"
    reader = f"read_csv({source}, header = true{text})" if fmt == "csv" else f"read_parquet({source})"
    try:
        # A fresh table's rowid follows insertion order, which DuckDB preserves
        # from the file: rowid + 1 is the data-row number the user sees.
        con.execute(f"CREATE TEMP TABLE {raw} AS SELECT * FROM {reader}")
    except duckdb.Error as exc:
        kind = "a well-formed CSV file with a header row" if fmt == "csv" else "a readable Parquet file"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInputError(f"file {path.name} is not {kind}: {first}. Fix: re-export the file") from exc


def _normalise_header(con: duckdb.DuckDBPyConnection, raw: str) -> list[str]:
    names = [r[0] for r in con.execute(f"SELECT column_name FROM (DESCRIBE {raw})").fetchall()]
    clean = [n.strip().lower().lstrip("\ufeff") for n in names]
    for old, new in zip(names, clean, strict=True):
        if old != new and clean.count(new) == 1:
            con.execute(f'ALTER TABLE {raw} RENAME COLUMN "{old}" TO "{new}"')
    return clean


def _stage(con: duckdb.DuckDBPyConnection, raw: str, staged: str, table: Table, columns: list[str], *,
           numbered: bool = False) -> None:
    """The typed staging table: every table column in its type, defaults filled, plus ``_row``."""
    select = ["_row" if numbered else "rowid + 1 AS _row"]
    for col in table.columns:
        value = f'TRY_CAST("{col.name}" AS {col.type})' if col.name in columns else f"NULL::{col.type}"
        if col.default is not None:
            value = f"COALESCE({value}, {col.default})"
        select.append(f'{value} AS "{col.name}"')
    con.execute(f"CREATE TEMP TABLE {staged} AS SELECT {', '.join(select)} FROM {raw}")


def insert_staged(con: duckdb.DuckDBPyConnection, staged: str, table: Table, columns: list[str], *,
                  upsert: bool) -> None:
    """Copy the checked rows of ``staged`` into ``table`` (inside the caller's transaction)."""
    written = [c.name for c in table.columns if c.name in columns or c.default is not None]
    names = ", ".join(f'"{c}"' for c in written)
    sql = f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staged}"
    if upsert:
        updates = [c for c in written if c not in table.key]
        keys = ", ".join(table.key)
        sql += (
            f" ON CONFLICT ({keys}) DO UPDATE SET " + ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in updates)
            if updates
            else f" ON CONFLICT ({keys}) DO NOTHING"
        )
    try:
        con.execute(sql)
    except duckdb.ConstraintException as exc:
        # Validation checks keys first; this only fires if another writer got in between.
        raise BadInputError(
            f"cannot import into table '{table.name}': {exc}; nothing was written. Fix: re-run the import"
        ) from exc
