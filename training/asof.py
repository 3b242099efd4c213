"""As-of matching in portable SQL: for each row, the latest snapshot at or before its time.

DuckDB has ``ASOF JOIN``; Spark has not. Both run the window form written here,
so the training set (and the regret book's support) has one SQL source:

1. the left rows (decisions) and the right rows (snapshot times) are stacked in
   one relation, each with its key, time ``_t`` and kind (snapshots ``0``,
   decisions ``1``);
2. ``last_value(snapshot time IGNORE NULLS) OVER (PARTITION BY key ORDER BY _t,
   _kind)`` carries the latest snapshot time forward onto every decision; with
   snapshots ordered first at equal times, a snapshot as of T serves a decision
   made at T (as ``ASOF ... ON d.ts >= s.as_of`` does);
3. the caller equi-joins the snapshot rows on ``(key, matched time)``.

Only keys and times go through the window; the wide feature rows are joined
once, by equality.
"""

from __future__ import annotations

from collections.abc import Sequence


def asof_match(left: str, left_id: str, left_time: str, right: str, right_time: str, keys: Sequence[str],
               *, id_type: str = "VARCHAR") -> str:
    """A ``SELECT`` of ``left_id, matched_as_of``: per row of ``left``, the latest ``right_time`` of
    ``right`` with the same ``keys`` at or before ``left_time`` (NULL when there is none).

    Parameters
    ----------
    left, right
        Relation names (a CTE or a table).
    left_id
        Column identifying a row of ``left`` (unique).
    left_time, right_time
        Timestamp columns compared (``right_time <= left_time`` matches).
    keys
        Columns both relations share, matched by equality.
    id_type
        SQL type of ``left_id`` (for the NULLs of the snapshot rows).
    """
    cols = ", ".join(keys)
    stacked = (
        f"SELECT {cols}, {left_time} AS _t, 1 AS _kind, {left_id} AS _id, CAST(NULL AS TIMESTAMP) AS _as_of "
        f"FROM {left} "
        f"UNION ALL SELECT DISTINCT {cols}, {right_time} AS _t, 0 AS _kind, CAST(NULL AS {id_type}) AS _id, "
        f"{right_time} AS _as_of FROM {right}"
    )
    carried = (
        f"SELECT _id, _kind, last_value(_as_of IGNORE NULLS) OVER (PARTITION BY {cols} ORDER BY _t, _kind "
        f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS matched_as_of FROM ({stacked}) stacked"
    )
    return f"SELECT _id AS {left_id}, matched_as_of FROM ({carried}) carried WHERE _kind = 1"
