"""Training sets on Spark: the same as-of SQL over the lake, the model fitted on the driver.

``nextbest train --engine spark --lake DIR`` builds the training set with
:func:`nextbest.training.dataset.build_training_set` on a
:class:`~nextbest.spark.features.SparkEngine` (the one statement, transpiled),
collects it on the driver and fits LightGBM there exactly as the local
``train`` does, on the whole training set (no sample): one row per labelled
decision with its features, which fits a driver long after the raw tables do
not. Decision dates without a snapshot in the lake get one first, built on
Spark (:func:`~nextbest.spark.features.build_snapshots`), as the local
``train`` builds the warehouse's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.errors import NotFoundError
from nextbest.features.registry import categorical_features, feature_defs, model_features, offer_history_features
from nextbest.spark.features import SparkEngine, build_snapshots, lake_snapshot_dates
from nextbest.training.dataset import TrainingSet, build_training_set, decision_dates, observed_until
from nextbest.training.snapshots import feature_set_versions
from nextbest.workspace import Workspace


def build_spark_training_set(engine: SparkEngine, config: NextbestConfig) -> TrainingSet:
    """The training set of the lake's decisions and snapshots (no snapshot is built)."""
    history = {d.name: d.default for d in offer_history_features(feature_defs(config))}
    return build_training_set(
        engine, config,
        features=model_features(config),
        categorical=categorical_features(config),
        offer_history=history,
        experiments=config.training.experiments,
    )


def load_spark_training_set(ws: Workspace, config: NextbestConfig, lake: Path, master: str | None = None,
                            progress: Callable[[str], None] | None = None) -> tuple[TrainingSet, str]:
    """``train --engine spark``: missing snapshots built on Spark, then the training set and its feature set version."""
    from nextbest.features.cli import models_root, reusable_models
    from nextbest.spark.session import get_session

    say = progress or (lambda _msg: None)
    engine = SparkEngine(get_session(master), lake)
    until = observed_until(engine)
    if until is None:
        raise NotFoundError(f"--lake {lake}: no decisions; export a workspace with decisions or add them")
    horizon = pd.Timestamp(until) - pd.Timedelta(days=config.training.response_window_days)
    have = set(lake_snapshot_dates(engine))
    missing = sorted({pd.Timestamp(d).normalize() for d in decision_dates(engine, horizon)} - have)
    if missing:
        say(f"building {len(missing)} missing feature snapshot(s) for the decision dates on Spark")
        models = reusable_models(ws, config, missing[0], refit=False)
        build_snapshots(engine, config, missing, models=models, on_fitted=lambda m: m.save(models_root(ws)))
    data = build_spark_training_set(engine, config)
    versions = feature_set_versions(engine, data.lineage["snapshot_dates"])
    data.lineage["engine"] = "spark"
    return data, ",".join(versions) or "unknown"
