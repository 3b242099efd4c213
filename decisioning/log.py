"""Decision rows for the ``decisions`` table, and writing them.

The scoring service and batch runs both log through :func:`write_decisions`,
which opens a short-lived connection per batch: DuckDB allows one writer per
file across processes, so no long-running process may keep the warehouse open.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from nextbest.decisioning.documents import RankResponse
from nextbest.warehouse.db import connect, transaction
from nextbest.warehouse.schema import TABLES

#: Columns of the ``decisions`` table, in order (the data contract is the source).
DECISION_COLUMNS: tuple[str, ...] = TABLES["decisions"].column_names


def decision_rows(documents: Sequence[RankResponse]) -> pd.DataFrame:
    """One ``decisions`` row per document: its rank-1 action ('no action' = null offer).

    ``score`` is the action's expected value; ``propensity`` the probability the
    policy chose it; ``contacted`` is false for the control arm and for 'no action'.
    """
    tops = [doc.actions[0] for doc in documents]
    # Column lists, not a dict per row: the service logs every decision through here.
    columns: dict[str, list[object]] = {
        "decision_id": [d.decision_id for d in documents],
        "customer_id": [d.customer_id for d in documents],
        "ts": [d.at for d in documents],
        "offer_id": [a.offer_id for a in tops],
        "channel": [a.channel for a in tops],
        "arm": [d.arm for d in documents],
        "experiment": [d.experiment for d in documents],
        "propensity": [a.propensity for a in tops],
        "model_version": [d.model_version for d in documents],
        "score": [a.expected_value for a in tops],
        "contacted": [d.contacted for d in documents],
    }
    return as_decision_rows(pd.DataFrame({c: columns[c] for c in DECISION_COLUMNS}))


def as_decision_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` reduced to the ``decisions`` columns with the table's types."""
    out = frame.loc[:, list(DECISION_COLUMNS)].copy()
    out["customer_id"] = out["customer_id"].astype("int64")
    out["ts"] = pd.to_datetime(out["ts"]).astype("datetime64[us]")
    out["propensity"] = out["propensity"].astype(float)
    out["score"] = out["score"].astype(float)
    out["contacted"] = out["contacted"].astype(bool)
    return out


def insert_decisions(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> int:
    """Append ``rows`` to ``decisions`` on an open connection, in one transaction."""
    rows = as_decision_rows(rows)
    con.register("_nb_decisions", rows)
    try:
        with transaction(con):
            con.execute(f"INSERT INTO decisions ({', '.join(DECISION_COLUMNS)}) SELECT {', '.join(DECISION_COLUMNS)} FROM _nb_decisions")
    finally:
        con.unregister("_nb_decisions")
    return len(rows)


def write_decisions(warehouse: Path | str, rows: pd.DataFrame, *, retries: int = 20, wait_s: float = 0.05) -> int:
    """Append ``rows`` to the warehouse's ``decisions`` table with a short-lived connection.

    Parameters
    ----------
    warehouse
        Path of the DuckDB file.
    rows
        Decision rows (:func:`decision_rows` or ``Decisions.decisions``).
    retries, wait_s
        Another process may hold the file's write lock for a moment: retry with
        a growing wait before giving up.

    Returns
    -------
    int
        Rows written.
    """
    for attempt in range(retries + 1):
        try:
            con = connect(warehouse)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or attempt == retries:
                raise
            time.sleep(wait_s * (1 + attempt))
            continue
        try:
            return insert_decisions(con, rows)
        finally:
            con.close()
    raise AssertionError("unreachable")  # pragma: no cover
