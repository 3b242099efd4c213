"""Right to be forgotten (GDPR art. 17 / AVG): erase one customer everywhere.

Design
------
* **Discovered, not listed.** Every base table, in every schema of the
  warehouse, that has a ``customer_id`` column is erased by that column; a
  table without one but with a ``decision_id`` column (``responses``) is erased
  through the customer's decisions. Feature snapshots, ground truth and any
  table added later are covered without changing this module — which is why
  customer-keyed data must use the column name ``customer_id``.
* **Stores outside DuckDB** (parquet snapshots, MLflow artifacts) register an
  eraser with :func:`register_eraser` when their module is imported; the
  command line imports every subpackage's commands, so they are all known to
  ``nextbest data forget``.
* **All or nothing for the warehouse.** The deletes and the erasers run inside
  one warehouse transaction, committed only when every eraser succeeded.
* **Audit without personal data.** One JSON line per erasure in
  ``workspace/audit.log``: time, an HMAC-SHA256 of the id under a secret key
  kept in the workspace (so the line proves *that* an id was erased to whoever
  holds the id, without revealing it) and the number of rows removed per table
  and store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import duckdb
from nextbest.warehouse.db import connect, transaction

from nextbest.errors import NotFoundError
from nextbest.workspace import Workspace

#: An eraser removes one customer from a store outside the warehouse and
#: returns how many records it removed (0 if the customer was not there).
Eraser = Callable[[Workspace, int], int]

_ERASERS: dict[str, Eraser] = {}

#: Name of the file (inside the workspace) holding the audit hash key.
AUDIT_KEY_FILE = ".audit-key"


def register_eraser(name: str, fn: Eraser) -> None:
    """Register ``fn`` to be called by every :func:`forget` (re-registering a name replaces it).

    Parameters
    ----------
    name
        Short, stable name of the store (appears in the audit log), e.g. ``"feature_parquet"``.
    fn
        ``fn(workspace, customer_id) -> records_removed``. It must be idempotent:
        a failed erasure is retried by running ``forget`` again.
    """
    _ERASERS[name] = fn


def unregister_eraser(name: str) -> None:
    """Remove a registered eraser (no error if absent)."""
    _ERASERS.pop(name, None)


def registered_erasers() -> Mapping[str, Eraser]:
    """The erasers :func:`forget` will call, by name (read-only view)."""
    return MappingProxyType(_ERASERS)


@dataclass(frozen=True)
class ErasureResult:
    """What :func:`forget` removed. Holds no personal data (the id is only kept hashed)."""

    subject: str  # HMAC of the customer id
    ts: dt.datetime
    tables: dict[str, int] = field(default_factory=dict)  # "schema.table" -> rows deleted
    stores: dict[str, int] = field(default_factory=dict)  # eraser name -> records removed

    @property
    def total(self) -> int:
        return sum(self.tables.values()) + sum(self.stores.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "ts": self.ts.isoformat(timespec="seconds"),
            "event": "forget",
            "subject": self.subject,
            "tables": self.tables,
            "stores": self.stores,
            "total": self.total,
        }


def customer_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """``(schema, table, customer_id type)`` of every base table with a ``customer_id`` column."""
    return con.execute(
        """
        SELECT c.table_schema, c.table_name, c.data_type
        FROM information_schema.columns c
        JOIN information_schema.tables t USING (table_catalog, table_schema, table_name)
        WHERE c.column_name = 'customer_id' AND t.table_type = 'BASE TABLE'
          AND c.table_catalog = current_database()
        ORDER BY c.table_schema, c.table_name
        """
    ).fetchall()


def decision_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """``(schema, table)`` of base tables keyed by ``decision_id`` without a ``customer_id``."""
    return con.execute(
        """
        SELECT c.table_schema, c.table_name
        FROM information_schema.columns c
        JOIN information_schema.tables t USING (table_catalog, table_schema, table_name)
        WHERE c.column_name = 'decision_id' AND t.table_type = 'BASE TABLE'
          AND c.table_catalog = current_database()
          AND (c.table_schema, c.table_name) NOT IN (
              SELECT (table_schema, table_name) FROM information_schema.columns WHERE column_name = 'customer_id')
        ORDER BY c.table_schema, c.table_name
        """
    ).fetchall()


def forget(workspace: Workspace, customer_id: int) -> ErasureResult:
    """Erase ``customer_id`` from the warehouse and every registered store, then audit it.

    Parameters
    ----------
    workspace
        The workspace; its warehouse is opened for the duration of the call only.
    customer_id
        The customer to erase.

    Returns
    -------
    ErasureResult
        Rows removed per table and store (also appended to ``workspace.audit_log``).

    Raises
    ------
    NotFoundError
        When no table or store knows the customer (nothing is changed or logged).
    """
    con = connect(workspace.warehouse_path)
    try:
        with transaction(con):
            tables = _delete_everywhere(con, customer_id)
            stores = {name: int(fn(workspace, customer_id)) for name, fn in sorted(_ERASERS.items())}
            if not any(tables.values()) and not any(stores.values()):
                raise NotFoundError(
                    f"customer_id {customer_id} is not in the warehouse or any registered store; nothing to erase. "
                    "Fix: check the id (customer ids are integers)"
                )
        # Rewrite the touched blocks now rather than at some later checkpoint.
        con.execute("CHECKPOINT")
    finally:
        con.close()
    result = ErasureResult(
        subject=subject_hash(workspace, customer_id),
        ts=dt.datetime.now(dt.UTC),
        tables={k: v for k, v in tables.items() if v},
        stores=stores,
    )
    with workspace.audit_log.open("a", encoding="utf-8") as log:
        log.write(json.dumps(result.as_dict(), sort_keys=True) + "\n")
    return result


def _delete_everywhere(con: duckdb.DuckDBPyConnection, customer_id: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    # Decision-keyed rows first: they are found through the decisions about to be deleted.
    has_decisions = any(s == "main" and t == "decisions" for s, t, _ in customer_tables(con))
    if has_decisions:
        for schema, table in decision_tables(con):
            counts[f"{schema}.{table}"] = _rowcount(
                con.execute(
                    f'DELETE FROM "{schema}"."{table}" WHERE decision_id IN '
                    "(SELECT decision_id FROM main.decisions WHERE customer_id = ?)",
                    [customer_id],
                )
            )
    for schema, table, dtype in customer_tables(con):
        # A table keyed by text ids (a team's own staging, say) still matches the id's text form.
        value: int | str = customer_id if _is_integer(dtype) else str(customer_id)
        counts[f"{schema}.{table}"] = _rowcount(
            con.execute(f'DELETE FROM "{schema}"."{table}" WHERE customer_id = ?', [value])
        )
    return counts


def subject_hash(workspace: Workspace, customer_id: int) -> str:
    """HMAC-SHA256 of the id under the workspace's secret audit key (created on first use)."""
    key = _audit_key(workspace.root / AUDIT_KEY_FILE)
    return hmac.new(key, str(customer_id).encode(), hashlib.sha256).hexdigest()


def _audit_key(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _rowcount(cursor: duckdb.DuckDBPyConnection) -> int:
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def _is_integer(dtype: str) -> bool:
    return dtype.upper() in {"BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER"}
