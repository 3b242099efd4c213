"""Batch decisions on Spark: the same :class:`DecisionEngine`, inside ``mapInPandas``.

The lake's latest feature snapshot (``<lake>/features/customer_snapshot/``) is
joined with each customer's offer history (``<lake>/features/offer_history/``,
nested as one list per customer), and every Arrow batch is decided by the
engine on an executor, with the champion (and challenger), the configuration
and the contact history broadcast once.

Daily channel capacities and offer caps are global: they cannot be allocated
inside a partition. The local engine (:meth:`select
<nextbest.decisioning.selection.select>`) first draws every customer's choice
as if nothing were capped, then lets the customers whose choice uses a capped
channel or offer compete for it by ranking key (losers choose again). Customers
whose first choice is uncapped never take part in that competition, so:

1. executors decide every customer with the capacities lifted (a capacity that is
   already exhausted still removes its pairs, as locally);
2. the driver decides again, with the real capacities and the local engine, the
   customers whose choice in pass 1 was a contact on a capped channel or offer —
   exactly the set that competes in the local engine, in the same order.

Both engines therefore write the same file (``tests/spark/test_decide.py``
checks it on a generated world with a binding capacity).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DoubleType, IntegerType, LongType, StringType, StructField, StructType

from nextbest.config import NextbestConfig
from nextbest.decisioning.batch import decide_rows
from nextbest.decisioning.engine import DecisionEngine
from nextbest.decisioning.history import ContactHistory, HistoryView
from nextbest.features.pressure import PressureFeature
from nextbest.errors import NotFoundError
from nextbest.features.registry import customer_features, feature_defs, offer_history_features
from nextbest.models.scoring import Scorer

#: Column of the joined frame holding a customer's offer-history rows.
_HISTORY = "_offer_history"
#: Rows the executors return (``ts`` is the run's time, set on the driver).
ROW_SCHEMA = StructType([
    StructField("decision_id", StringType()), StructField("customer_id", LongType()), StructField("rank", IntegerType()),
    StructField("offer_id", StringType()), StructField("channel", StringType()), StructField("probability", DoubleType()),
    StructField("uplift", DoubleType()), StructField("expected_value", DoubleType()),
    StructField("propensity", DoubleType()), StructField("arm", StringType()), StructField("experiment", StringType()),
    StructField("model_version", StringType()), StructField("contacted", BooleanType()),
])
_ROW_NAMES = [f.name for f in ROW_SCHEMA.fields]


class UncappedHistory:
    """A contact history whose views lift every capacity that is not exhausted (pass 1).

    A channel or offer with nothing left keeps its zero, so the rules remove its
    pairs exactly as the local engine does; one with something left reads as
    unlimited, so no partition allocates a capacity it only sees part of.
    """

    def __init__(self, history: ContactHistory) -> None:
        self.history = history

    def pressure(self, customer_ids: np.ndarray, at: dt.datetime, features: Sequence[PressureFeature]) -> dict[str, np.ndarray]:
        """The contact pressure of the history as it is (no capacity in it)."""
        return self.history.pressure(customer_ids, at, features)

    def view(self, customer_ids: np.ndarray, at: dt.datetime) -> HistoryView:
        v = self.history.view(customer_ids, at)
        return replace(
            v,
            offer_remaining=np.where(v.offer_remaining > 0, np.inf, v.offer_remaining),
            channel_remaining=np.where(v.channel_remaining > 0, np.inf, v.channel_remaining),
        )


@dataclass(frozen=True)
class LakeSnapshot:
    """The lake's latest feature snapshot, customer features joined with their nested offer history."""

    as_of: pd.Timestamp
    customers: DataFrame
    features: list[str]
    history_columns: list[str]

    def of(self, customer_ids: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Features and offer history of ``customer_ids`` on the driver (the capped customers)."""
        spark = self.customers.sparkSession
        ids = spark.createDataFrame(pd.DataFrame({"customer_id": np.asarray(customer_ids, dtype=np.int64)}))
        part = self.customers.join(F.broadcast(ids), "customer_id").toPandas()
        return split_batch(part, self.features, self.history_columns)


def read_snapshot(spark: SparkSession, lake: Path | str, config: NextbestConfig) -> LakeSnapshot:
    """The latest snapshot of ``<lake>/features/`` (the same as-of ``features build`` wrote last).

    ``lake`` is a folder or a URL Spark reads (``s3a://bucket/lake``, ``hdfs://...``).

    Raises
    ------
    NotFoundError
        When the lake has no feature snapshot.
    """
    root = f"{str(lake).rstrip('/')}/features"
    paths = [f"{root}/customer_snapshot", f"{root}/offer_history"]
    # A local lake is checked here, to name the command that writes it; a URL (s3a://, hdfs://) is Spark's to read.
    missing = [p for p in paths if "://" not in p and not Path(p).exists()]
    if missing:
        raise NotFoundError(
            f"no feature snapshot in the lake: {missing[0]} is missing; run `nextbest data export --output {lake}` "
            f"(or `nextbest features build --engine spark --lake {lake}`)"
        )
    defs = feature_defs(config)
    names = [d.name for d in customer_features(defs)]
    hist = [d.name for d in offer_history_features(defs)]
    snap = spark.read.parquet(paths[0])
    as_of = snap.agg(F.max("as_of")).first()[0]
    if as_of is None:
        raise NotFoundError(f"the lake's feature snapshot {paths[0]} is empty; run `nextbest features build`")
    features = snap.where(F.col("as_of") == F.lit(as_of)).select("customer_id", *names)
    offers = spark.read.parquet(paths[1])
    nested = (
        offers.where(F.col("as_of") == F.lit(as_of))
        .groupBy("customer_id")
        .agg(F.sort_array(F.collect_list(F.struct("offer_id", *hist))).alias(_HISTORY))
    )
    return LakeSnapshot(pd.Timestamp(as_of), features.join(nested, "customer_id", "left"), names, hist)


def split_batch(batch: pd.DataFrame, names: list[str], hist: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A joined batch as the engine's two frames: features, and offer history by customer and offer."""
    features = batch.loc[:, ["customer_id", *names]].reset_index(drop=True)
    lists = batch[_HISTORY].tolist() if _HISTORY in batch.columns else [None] * len(batch)
    counts = np.array([0 if v is None else len(v) for v in lists], dtype=np.int64)
    records = [dict(r) for v in lists if v is not None for r in v]
    offers = pd.DataFrame.from_records(records, columns=["offer_id", *hist])
    offers.insert(0, "customer_id", np.repeat(batch["customer_id"].to_numpy(np.int64), counts))
    offers["offer_id"] = offers["offer_id"].astype(object)
    for c in hist:
        offers[c] = pd.to_numeric(offers[c], errors="coerce").astype("float64")
    offers = offers.sort_values(["customer_id", "offer_id"], kind="stable").reset_index(drop=True)
    return features, offers


#: Engines built in this Python worker, per broadcast (workers are reused across tasks).
_ENGINES: dict[str, tuple[DecisionEngine, UncappedHistory]] = {}


def _engine_of(payload: Any, key: str) -> tuple[DecisionEngine, UncappedHistory]:
    if key not in _ENGINES:
        config, scorers, history = payload.value
        _ENGINES.clear()
        _ENGINES[key] = (DecisionEngine(config, scorers), UncappedHistory(history))
    return _ENGINES[key]


def _decide_partition(
    payload: Any, names: list[str], hist: list[str], at: dt.datetime, seed: int, top_k: int,
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    key = uuid.uuid4().hex  # names this run's broadcast in the workers' engine cache

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        engine, history = _engine_of(payload, key)
        for batch in batches:
            if len(batch) == 0:
                continue
            features, offers = split_batch(batch, names, hist)
            rows = decide_rows(engine, features, offers, at, seed=seed, top_k=top_k, history=history)  # type: ignore[arg-type]
            yield rows.loc[:, _ROW_NAMES]

    return run


def capped_customers(rows: pd.DataFrame, config: NextbestConfig, history: ContactHistory, at: dt.datetime) -> np.ndarray:
    """Customers whose pass-1 decision is a contact on a channel or offer with a capacity left to allocate."""
    view = history.view(np.zeros(0, dtype=np.int64), at)
    channels = {c.id for c, left in zip(config.channels.channels, view.channel_remaining, strict=True) if np.isfinite(left)}
    offers = {o.id for o, left in zip(config.offers.offers, view.offer_remaining, strict=True) if np.isfinite(left)}
    top = rows[(rows["rank"] == 1) & rows["contacted"]]
    hit = top["channel"].isin(channels) | top["offer_id"].isin(offers)
    return top.loc[hit, "customer_id"].to_numpy(np.int64)


def decide_spark(
    spark: SparkSession,
    lake: Path | str,
    config: NextbestConfig,
    scorers: dict[str, Scorer],
    at: dt.datetime,
    *,
    seed: int,
    top_k: int,
    history: ContactHistory,
) -> tuple[pd.DataFrame, LakeSnapshot]:
    """Decide every customer of the lake's latest snapshot: :func:`~nextbest.decisioning.batch.decide_rows`'
    rows, equal to the local engine's.

    Parameters
    ----------
    spark
        The session (:func:`nextbest.spark.session.get_session`).
    lake
        The lake folder (``nextbest data export --output``).
    config, scorers
        Configuration and the registry's scorers (champion first), broadcast to the executors.
    at, seed, top_k
        Decision time (the day's start), exploration seed, ranked actions per customer.
    history
        Contact history at ``at`` (broadcast; capacities are allocated on the driver).

    Returns
    -------
    rows, snapshot
        The rows, and the snapshot they were decided from (to decide customers again).
    """
    snapshot = read_snapshot(spark, lake, config)
    payload = spark.sparkContext.broadcast((config, scorers, history))
    try:
        run = _decide_partition(payload, snapshot.features, snapshot.history_columns, at, seed, top_k)
        rows = snapshot.customers.mapInPandas(run, ROW_SCHEMA).toPandas()
    finally:
        payload.unpersist()
    rows = _typed(rows, at)
    capped = capped_customers(rows, config, history, at)
    if len(capped):
        features, offers = snapshot.of(capped)
        again = decide_rows(DecisionEngine(config, scorers), features, offers, at, seed=seed, top_k=top_k, history=history)
        rows = pd.concat([rows[~rows["customer_id"].isin(capped)], again], ignore_index=True)
    return rows.sort_values(["customer_id", "rank"], kind="stable").reset_index(drop=True), snapshot


def _typed(rows: pd.DataFrame, at: dt.datetime) -> pd.DataFrame:
    """Executor rows with the local rows' types, and the run's time."""
    out = rows.assign(ts=pd.Timestamp(at).as_unit("us"))
    out["rank"] = out["rank"].astype("int32")
    out["customer_id"] = out["customer_id"].astype("int64")
    for c in ("probability", "uplift", "expected_value", "propensity"):
        out[c] = out[c].astype("float64")
    for c in ("offer_id", "channel", "arm", "decision_id", "experiment", "model_version"):
        out[c] = out[c].astype(object).where(out[c].notna(), None)
    out["contacted"] = out["contacted"].astype(bool)
    return out
