"""Feature snapshots on Spark, from the same SQL as the DuckDB build.

:class:`SparkEngine` is the :class:`~nextbest.warehouse.engine.SqlEngine` of a
lake: it registers every lake table as a temporary view and runs each statement
of the feature pipeline through :func:`~nextbest.spark.transpile.transpile`.
:func:`build_snapshots` then runs :mod:`nextbest.features.pipeline` unchanged
against it: the composed feature statement and the offer history run on Spark;
the fitted features (basket clusters, CLV) are fitted and applied on the
driver, with the same code as the local build, to the Spark result collected
there. So a snapshot built on Spark equals the one built by DuckDB (floats
within 1e-9).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from pyspark.sql import SparkSession

from nextbest.config import NextbestConfig
from nextbest.errors import BadInputError
from nextbest.features.fitted import FeatureModels
from nextbest.features.pipeline import apply_models, build_offer_history, compute_sql_features, fit_feature_models
from nextbest.features.snapshots import manifest
from nextbest.spark.lake import lake_tables, write_snapshot_files
from nextbest.spark.transpile import transpile, view_name
from nextbest.workspace import Workspace


class SparkEngine:
    """:class:`~nextbest.warehouse.engine.SqlEngine` over a Parquet lake on a Spark session.

    Parameters
    ----------
    spark
        The session (:func:`nextbest.spark.session.get_session`).
    lake
        The lake folder (layout: :mod:`nextbest.spark.lake`).
    """

    def __init__(self, spark: SparkSession, lake: Path) -> None:
        self.spark = spark
        self.lake = Path(lake)
        self.tables: dict[str, Path] = lake_tables(self.lake)
        if "customers" not in self.tables:
            raise BadInputError(f"--lake {lake}: no customers/ folder of Parquet files; export a workspace with "
                                f"`nextbest data export --output {lake}` or add the table")
        self.refresh()

    def refresh(self) -> None:
        """(Re)register every lake table as a temporary view (after the lake changed)."""
        self.tables = lake_tables(self.lake)
        for name, folder in self.tables.items():
            self.spark.read.parquet(str(folder)).createOrReplaceTempView(view_name(name))

    def sql(self, sql: str, params: Mapping[str, Any] | None = None):  # -> pyspark DataFrame
        """The transpiled statement as a Spark DataFrame (lazy)."""
        return self.spark.sql(transpile(sql, params))

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        return to_pandas(self.sql(sql, params))

    def has_table(self, qualified: str) -> bool:
        return self._key(qualified) in self.tables

    def columns(self, qualified: str) -> list[str]:
        key = self._key(qualified)
        return list(self.spark.table(view_name(key)).columns) if key in self.tables else []

    @staticmethod
    def _key(qualified: str) -> str:
        schema, _, name = qualified.rpartition(".")
        return name if schema in ("", "main") else qualified


def to_pandas(frame: Any) -> pd.DataFrame:
    """A Spark DataFrame on the driver, with the pandas dtypes DuckDB's ``.df()`` gives the same result.

    Through Arrow, column by column: integers and booleans holding NULLs become
    pandas' nullable ``Int*``/``boolean`` (numpy ones without), dates become
    ``datetime64`` — DuckDB's conventions, which the models and parity tests see.
    """
    table = frame.toArrow()
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if column.null_count and (pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
            columns[name] = column.to_pandas(types_mapper=_NULLABLE.get)
        elif pa.types.is_date(kind):
            columns[name] = column.cast(pa.timestamp("us")).to_pandas()
        else:
            columns[name] = column.to_pandas()
    return pd.DataFrame(columns, columns=table.column_names)


#: Arrow types whose NULL-holding columns DuckDB hands over as pandas' nullable dtypes.
_NULLABLE: dict[pa.DataType, Any] = {
    pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype(),
}


@dataclass(frozen=True)
class SparkBuild:
    """What :func:`build_snapshots` built: per as-of, the features and offer history, and the manifests."""

    models: FeatureModels
    fitted: bool
    snapshots: list[tuple[pd.Timestamp, pd.DataFrame, pd.DataFrame]]
    manifests: list[dict[str, Any]]


def build_snapshots(engine: SparkEngine, config: NextbestConfig, dates: Sequence[pd.Timestamp], *,
                    models: FeatureModels | None = None, write: bool = True,
                    on_fitted: Callable[[FeatureModels], None] | None = None) -> SparkBuild:
    """Build (and write to the lake) the snapshots as of ``dates`` on Spark.

    Parameters
    ----------
    models
        Fitted feature models to apply; ``None`` fits them at ``dates[0]`` (on the
        driver, from Spark results), as the local build does.
    write
        Write each snapshot to ``lake/features/`` (replacing that as-of).
    on_fitted
        Called with newly fitted models (the CLI saves them in the workspace).
    """
    if not dates:
        raise BadInputError("no snapshot date to build; pass --as-of or --snapshots with --from/--to")
    fitted = models is None
    out: list[tuple[pd.Timestamp, pd.DataFrame, pd.DataFrame]] = []
    docs: list[dict[str, Any]] = []
    for when in dates:
        frame = compute_sql_features(engine, when, config)
        if models is None:
            models = fit_feature_models(engine, when, config, features=frame)
            if on_fitted is not None:
                on_fitted(models)
        feats = apply_models(frame, models, config)
        hist = build_offer_history(engine, when, config)
        doc = manifest(feats, hist, when, models)
        if write:
            write_snapshot_files(engine.lake, when, feats, hist, manifest_frame(doc))
        out.append((when, feats, hist))
        docs.append(doc)
    if write:
        engine.refresh()
    return SparkBuild(models, fitted, out, docs)


def manifest_frame(doc: Mapping[str, Any]) -> pd.DataFrame:
    """One manifest row with the warehouse's ``features.manifest`` columns (``as_of`` added by the writer)."""
    return pd.DataFrame([{
        "feature_set_version": doc["feature_set_version"],
        "built_at": pd.Timestamp(doc["built_at"]),
        "row_count": int(doc["row_count"]),
        "offer_history_rows": int(doc["offer_history_rows"]),
        "definition_hash": doc["definition_hash"],
        "fitted_as_of": pd.Timestamp(doc["fitted_as_of"]),
        "clv_method": doc["clv_method"],
        "null_shares": json.dumps(doc["null_shares"]),
    }])


def lake_snapshot_dates(engine: SparkEngine) -> list[pd.Timestamp]:
    """As-of times of the snapshots in the lake, oldest first."""
    if not engine.has_table("features.manifest"):
        return []
    frame = engine.query("SELECT DISTINCT as_of FROM features.manifest ORDER BY as_of")
    return [pd.Timestamp(x) for x in frame["as_of"]]


def build_on_spark(ws: Workspace, config: NextbestConfig, lake: Path, *, master: str | None, as_of: str | None,
                   snapshots: str | None, start: str | None, end: str | None, refit: bool,
                   ) -> tuple[list[dict[str, Any]], FeatureModels, bool, list[tuple[pd.Timestamp, pd.DataFrame]]]:
    """``nextbest features build --engine spark``: snapshots from the lake, written to ``lake/features/``.

    The fitted feature models are the workspace's, as for a local build: reused
    when fitted no later than the first as-of, else fitted there and saved.

    Returns
    -------
    tuple
        The manifests, the models, whether they were fitted now, and ``(as_of, features)`` per snapshot.
    """
    from nextbest.features.cli import models_root, reusable_models, snapshot_plan
    from nextbest.spark.session import get_session

    engine = SparkEngine(get_session(master), lake)
    if int(engine.query("SELECT count(*) AS n FROM customers")["n"].iloc[0]) == 0:
        raise BadInputError(f"--lake {lake}: the customers table is empty")
    dates = snapshot_plan(as_of, snapshots, start, end, engine)  # type: ignore[arg-type]
    models = reusable_models(ws, config, dates[0], refit)
    built = build_snapshots(engine, config, dates, models=models,
                            on_fitted=lambda m: m.save(models_root(ws)))
    return built.manifests, built.models, built.fitted, [(when, feats) for when, feats, _ in built.snapshots]
