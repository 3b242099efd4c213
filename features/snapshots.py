"""Feature snapshots in the warehouse (``features`` schema) and in Parquet files.

Tables
------
``features.customer_snapshot``  ``(as_of, customer_id)`` + one column per customer feature.
``features.offer_history``      ``(as_of, customer_id, offer_id)`` + the offer-history features.
``features.manifest``           one row per snapshot: feature set version, row count, CLV method and
                                basis (what ``clv_12m`` is measured in), null shares.

Rebuilding an as-of replaces its rows (idempotent). A registry that gained
features adds columns; rows of older feature sets keep nulls there.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from nextbest.features.fitted import FeatureModels
from nextbest.features.registry import FeatureDef, customer_features, feature_defs, offer_history_features
from nextbest.warehouse.db import transaction

from nextbest.config import NextbestConfig
from nextbest.errors import BadInputError, NotFoundError

SCHEMA = "features"
SNAPSHOT = f"{SCHEMA}.customer_snapshot"
OFFER_HISTORY = f"{SCHEMA}.offer_history"
MANIFEST = f"{SCHEMA}.manifest"


def _ensure_table(con: duckdb.DuckDBPyConnection, table: str, keys: Sequence[tuple[str, str]],
                  defs: Sequence[FeatureDef]) -> None:
    cols = [f"{name} {typ} NOT NULL" for name, typ in keys] + [f"{d.name} {d.sql_type}" for d in defs]
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(cols)})")
    schema, name = table.split(".")
    have = dict(con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [schema, name],
    ).fetchall())
    for d in defs:
        if d.name not in have:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {d.name} {d.sql_type}")
        elif have[d.name] != d.sql_type and d.group == "attributes":
            # A declared attribute changed type (only possible while customers held no value of it):
            # older snapshots' values of the old type cannot be kept in the new column.
            con.execute(f"ALTER TABLE {table} DROP COLUMN {d.name}")
            con.execute(f"ALTER TABLE {table} ADD COLUMN {d.name} {d.sql_type}")


def ensure_tables(con: duckdb.DuckDBPyConnection, config: NextbestConfig) -> None:
    """Create the ``features`` schema and tables, adding columns of new features (idempotent)."""
    defs = feature_defs(config)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    _ensure_table(con, SNAPSHOT, [("as_of", "TIMESTAMP"), ("customer_id", "BIGINT")], customer_features(defs))
    _ensure_table(con, OFFER_HISTORY, [("as_of", "TIMESTAMP"), ("customer_id", "BIGINT"), ("offer_id", "VARCHAR")],
                  offer_history_features(defs))
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {MANIFEST} (feature_set_version VARCHAR NOT NULL, as_of TIMESTAMP NOT NULL, "
        "built_at TIMESTAMP, row_count BIGINT, offer_history_rows BIGINT, definition_hash VARCHAR, "
        "fitted_as_of TIMESTAMP, clv_method VARCHAR, null_shares VARCHAR)"
    )
    # Added later: the unit clv_12m is measured in (margin, amount x margin_rate, amount).
    con.execute(f"ALTER TABLE {MANIFEST} ADD COLUMN IF NOT EXISTS clv_basis VARCHAR")


def manifest(features: pd.DataFrame, offer_history: pd.DataFrame, as_of: pd.Timestamp,
             models: FeatureModels) -> dict[str, Any]:
    """The manifest of one snapshot (JSON-ready)."""
    nulls = features.drop(columns="customer_id").isna().mean()
    return {
        "feature_set_version": models.version,
        "as_of": as_of.isoformat(),
        "built_at": dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        "row_count": len(features),
        "offer_history_rows": len(offer_history),
        "definition_hash": models.definition_hash,
        "fitted_as_of": models.fitted_as_of.isoformat(),
        "clv_method": models.clv.method_,
        "clv_basis": models.clv.basis,
        "null_shares": {k: round(float(v), 6) for k, v in nulls.items() if v > 0},
    }


def write_snapshot(con: duckdb.DuckDBPyConnection, config: NextbestConfig, features: pd.DataFrame,
                   offer_history: pd.DataFrame, doc: dict[str, Any]) -> None:
    """Replace the snapshot ``doc['as_of']`` with ``features`` and ``offer_history``, all or nothing."""
    ensure_tables(con, config)
    as_of = pd.Timestamp(doc["as_of"]).to_pydatetime()
    con.register("_nb_features", features)
    con.register("_nb_offer_history", offer_history)
    try:
        with transaction(con):
            for table in (SNAPSHOT, OFFER_HISTORY, MANIFEST):
                con.execute(f"DELETE FROM {table} WHERE as_of = ?", [as_of])
            con.execute(f"INSERT INTO {SNAPSHOT} BY NAME SELECT CAST(? AS TIMESTAMP) AS as_of, * FROM _nb_features",
                        [as_of])
            con.execute(
                f"INSERT INTO {OFFER_HISTORY} BY NAME SELECT CAST(? AS TIMESTAMP) AS as_of, * FROM _nb_offer_history",
                [as_of],
            )
            con.execute(
                f"INSERT INTO {MANIFEST} (feature_set_version, as_of, built_at, row_count, offer_history_rows, "
                "definition_hash, fitted_as_of, clv_method, null_shares, clv_basis) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [doc["feature_set_version"], as_of, doc["built_at"], doc["row_count"], doc["offer_history_rows"],
                 doc["definition_hash"], doc["fitted_as_of"], doc["clv_method"], json.dumps(doc["null_shares"]),
                 doc.get("clv_basis")],
            )
    finally:
        con.unregister("_nb_features")
        con.unregister("_nb_offer_history")


def _has_snapshots(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'customer_snapshot'",
        [SCHEMA],
    ).fetchone()[0])


def snapshot_dates(con: duckdb.DuckDBPyConnection) -> list[pd.Timestamp]:
    """As-of times of the stored snapshots, oldest first (empty without any)."""
    if not _has_snapshots(con):
        return []
    return [pd.Timestamp(r[0]) for r in con.execute(f"SELECT DISTINCT as_of FROM {MANIFEST} ORDER BY 1").fetchall()]


def read_snapshot(con: duckdb.DuckDBPyConnection, config: NextbestConfig, as_of: pd.Timestamp | None = None,
                  customer_ids: Sequence[int] | None = None) -> tuple[pd.Timestamp, pd.DataFrame, pd.DataFrame]:
    """A stored snapshot (the latest when ``as_of`` is None): ``(as_of, features, offer_history)``.

    Raises
    ------
    NotFoundError
        No snapshot (at that as-of), naming the command that builds one.
    """
    dates = snapshot_dates(con)
    if not dates:
        raise NotFoundError("no feature snapshot in the warehouse; run `nextbest features build`")
    when = dates[-1] if as_of is None else pd.Timestamp(as_of)
    if when not in dates:
        raise NotFoundError(f"no feature snapshot as of {when}; stored: {', '.join(str(d) for d in dates[-5:])} "
                            f"(run `nextbest features build --as-of {when.date()}`)")
    names = [d.name for d in customer_features(feature_defs(config))]
    hist = [d.name for d in offer_history_features(feature_defs(config))]
    stored = {r[0] for r in con.execute(f"SELECT * FROM {SNAPSHOT} LIMIT 0").description}
    missing = [n for n in names if n not in stored]
    if missing:
        # The registry gained features since this snapshot was written (a nextbest upgrade or
        # a config change): reading it would hand models a different feature set.
        raise BadInputError(
            f"the feature snapshot as of {when} predates the current feature set (missing: "
            f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); rebuild it with "
            f"`nextbest features build --as-of {when.date()}`"
        )
    where, params = "as_of = $as_of", {"as_of": when.to_pydatetime()}
    if customer_ids is not None:
        where += " AND customer_id IN (SELECT UNNEST(CAST($ids AS BIGINT[])))"
        params["ids"] = [int(i) for i in customer_ids]
    feats = con.execute(f"SELECT customer_id, {', '.join(names)} FROM {SNAPSHOT} WHERE {where} ORDER BY customer_id",
                        params).df()
    offers = con.execute(
        f"SELECT customer_id, offer_id, {', '.join(hist)} FROM {OFFER_HISTORY} WHERE {where} "
        "ORDER BY customer_id, offer_id", params,
    ).df()
    return when, feats, offers


def write_parquet(path: Path, snapshots: Sequence[tuple[pd.Timestamp, pd.DataFrame]],
                  manifests: Sequence[dict[str, Any]]) -> Path:
    """Write ``as_of, customer_id, <features>`` rows of every snapshot to ``path`` and the
    manifests beside it (``<path>.manifest.json``); returns the manifest path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [pd.concat([pd.DataFrame({"as_of": when}, index=f.index), f], axis=1) for when, f in snapshots]
    pd.concat(frames, ignore_index=True).to_parquet(path, index=False)
    side = path.with_name(path.name + ".manifest.json")
    side.write_text(json.dumps(list(manifests), indent=2))
    return side
