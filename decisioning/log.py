"""Decision rows for the ``decisions`` table, and writing them into the warehouse.

Decisions are registered in the live store (:mod:`nextbest.live.register`) and
reach the warehouse through ``nextbest data sync``; :func:`write_decisions`
appends rows to the warehouse directly, for batch jobs that own it (tests, imports).
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


def decision_row(doc: RankResponse) -> tuple[object, ...]:
    """The ``decisions`` row of a document (its rank-1 action), values in :data:`DECISION_COLUMNS` order.

    A tuple of plain values: the garbage collector stops tracking it, so rows
    waiting to be written cost its scans nothing (the documents they came from
    can go as soon as they are answered).
    """
    top = doc.actions[0]
    values = {
        "decision_id": doc.decision_id, "customer_id": doc.customer_id, "ts": doc.at, "offer_id": top.offer_id,
        "channel": top.channel, "arm": doc.arm, "experiment": doc.experiment, "propensity": top.propensity,
        "model_version": doc.model_version, "score": top.expected_value, "contacted": doc.contacted,
    }
    return tuple(values[c] for c in DECISION_COLUMNS)


def decision_rows(documents: Sequence[RankResponse]) -> pd.DataFrame:
    """One ``decisions`` row per document: its rank-1 action ('no action' = null offer).

    ``score`` is the action's expected value; ``propensity`` the probability the
    policy chose it; ``contacted`` is false for the control arm and for 'no action'.
    """
    return decision_frame([decision_row(d) for d in documents])


def decision_frame(rows: Sequence[tuple[object, ...]]) -> pd.DataFrame:
    """:func:`decision_row` tuples as ``decisions`` rows with the table's types."""
    # Column lists, not a dict per row: the service logs every decision through here.
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(DECISION_COLUMNS)
    return as_decision_rows(pd.DataFrame({c: list(v) for c, v in zip(DECISION_COLUMNS, columns, strict=True)}))


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
