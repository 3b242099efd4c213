"""Make sure every decision date has a feature snapshot, building missing ones.

Training joins each decision to the latest snapshot at or before it; a snapshot
taken weeks earlier would describe a different customer. So before training,
every distinct decision date gets a snapshot as of its midnight (features from
data strictly before that day), built by the feature pipeline exactly as
``nextbest features build`` would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import duckdb
import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.warehouse.engine import SqlEngine, as_engine
from nextbest.workspace import Workspace


def stored_snapshot_dates(con: duckdb.DuckDBPyConnection) -> list[pd.Timestamp]:
    """As-of times of the snapshots in the warehouse."""
    from nextbest.features.snapshots import snapshot_dates

    return snapshot_dates(con)


def missing_dates(con: duckdb.DuckDBPyConnection, dates: Sequence[object]) -> list[pd.Timestamp]:
    """Decision dates (as midnights) without a snapshot as of that midnight."""
    have = set(stored_snapshot_dates(con))
    wanted = sorted({pd.Timestamp(d).normalize() for d in dates})
    return [d for d in wanted if d not in have]


def build_missing(
    ws: Workspace,
    con: duckdb.DuckDBPyConnection,
    config: NextbestConfig,
    dates: Sequence[pd.Timestamp],
    progress: Callable[[str], None] | None = None,
) -> list[pd.Timestamp]:
    """Build and store snapshots as of ``dates`` with the feature pipeline; returns the dates built.

    The fitted feature models (basket clusters, CLV) are reused when they were
    fitted no later than the first date, else fitted at that date, as
    ``nextbest features build`` does, so no snapshot sees its own future.
    """
    if not dates:
        return []
    from nextbest.features.cli import models_root, reusable_models
    from nextbest.features.pipeline import build_features, build_offer_history, fit_feature_models
    from nextbest.features.snapshots import manifest, write_snapshot
    from nextbest.progress import track

    say = progress or (lambda _msg: None)
    say(f"building {len(dates)} missing feature snapshot(s) for the decision dates")
    models = reusable_models(ws, config, dates[0], refit=False)
    if models is None:
        models = fit_feature_models(con, dates[0], config)
        models.save(models_root(ws))
    for when in track(dates, "feature snapshots", total=len(dates)):
        features = build_features(con, when, config, models=models)
        history = build_offer_history(con, when, config)
        write_snapshot(con, config, features, history, manifest(features, history, when, models))
    return list(dates)


def feature_set_versions(con: duckdb.DuckDBPyConnection | SqlEngine, dates: Sequence[object]) -> list[str]:
    """Feature set versions of the snapshots as of ``dates`` (from ``features.manifest``)."""
    if not dates:
        return []
    frame = as_engine(con).query(
        "SELECT DISTINCT feature_set_version FROM features.manifest "
        "WHERE list_contains(CAST($dates AS DATE[]), CAST(as_of AS DATE)) ORDER BY feature_set_version",
        {"dates": [str(d) for d in dates]},
    )
    return [str(v) for v in frame["feature_set_version"]]
