"""Training sets from the exposure log, point-in-time correct.

Each row is one decision of the ``decisions`` log (customer, offer, channel,
arm, propensity, contacted) with

* the customer's features from the latest ``features.customer_snapshot`` whose
  ``as_of`` is at or before the decision time (an as-of match in portable SQL,
  :mod:`nextbest.training.asof`, which Spark runs too: a snapshot taken after
  the decision is never used; a snapshot as of T only holds data strictly
  before T),
* the customer × offer history from ``features.offer_history``, joined the same way,
* the label: whether the configured outcome (``training.label``) was recorded
  within ``training.response_window_days`` of the decision, and the revenue of
  conversions in that window,
* when the warehouse holds a synthetic world's truth
  (``ground_truth.decision_truth``), the true ``p_contact``/``p_control``.

Decisions whose response window has not closed yet (it reaches past the last
recorded event) are left out: their labels are not final.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.errors import BadInputError, NotFoundError
from nextbest.training.asof import asof_match
from nextbest.warehouse.engine import SqlEngine, as_engine
from nextbest.features.contacts import PRESSURE_HORIZON_DAYS, pressure_features
from nextbest.features.contacts import pressure_sql as pressure_aggregates
from nextbest.features.pit import age_days

SNAPSHOT_TABLE = "features.customer_snapshot"
OFFER_HISTORY_TABLE = "features.offer_history"
TRUTH_TABLE = "ground_truth.decision_truth"

#: responses.outcome values that make a positive label, per ``training.label``.
LABEL_OUTCOMES: dict[str, tuple[str, ...]] = {
    "click": ("click",),
    "visit": ("visit",),
    "conversion": ("conversion",),
}
#: Decision columns carried into the training set (``contacted`` is the treatment).
DECISION_COLUMNS: tuple[str, ...] = (
    "decision_id", "customer_id", "ts", "offer_id", "channel", "arm", "experiment", "propensity", "contacted",
)
TREATMENT = "contacted"
#: Candidate columns the response model always reads besides the features.
ACTION_COLUMNS: tuple[str, ...] = ("offer_id", "channel")
#: Action columns that describe how a contact is made: no effect without one (see ``SLearner``).
TREATMENT_FEATURES: tuple[str, ...] = ("channel",)


@dataclass(frozen=True)
class TrainingSet:
    """Decisions joined to their features and labels.

    Attributes
    ----------
    frame
        One row per decision: :data:`DECISION_COLUMNS`, ``label``, ``revenue``,
        ``snapshot_as_of``, the feature columns and, on synthetic data,
        ``true_p_contact``/``true_p_control``.
    feature_columns
        Model inputs besides the treatment: customer features, offer-history
        features, ``offer_id`` and ``channel``.
    categorical
        The categorical ones among them.
    lineage
        Where the rows came from (label, window, date range, snapshot dates, counts).
    defaults
        Value of each offer-history column for a customer never shown the offer
        (what a scorer fills in when a candidate lacks the column).
    """

    frame: pd.DataFrame
    feature_columns: tuple[str, ...]
    categorical: tuple[str, ...]
    lineage: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, float] = field(default_factory=dict)

    @property
    def has_truth(self) -> bool:
        return "true_p_contact" in self.frame.columns and bool(self.frame["true_p_contact"].notna().any())

    @property
    def X(self) -> pd.DataFrame:
        """Model inputs including the treatment column."""
        return self.frame[[*self.feature_columns, TREATMENT]]

    @property
    def y(self) -> np.ndarray:
        return self.frame["label"].to_numpy(dtype=np.int8)

    def subset(self, mask: np.ndarray) -> TrainingSet:
        return replace(self, frame=self.frame.loc[mask].reset_index(drop=True))


def observed_until(con: duckdb.DuckDBPyConnection | SqlEngine) -> dt.datetime | None:
    """The last moment the warehouse has any event for: labels are final up to here."""
    frame = as_engine(con).query(
        "SELECT max(ts) AS until FROM (SELECT max(ts) AS ts FROM decisions UNION ALL SELECT max(ts) FROM responses "
        "UNION ALL SELECT max(ts) FROM interactions UNION ALL SELECT max(ts) FROM transactions)"
    )
    value = frame["until"].iloc[0] if len(frame) else None
    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def decision_dates(con: duckdb.DuckDBPyConnection | SqlEngine, until: dt.datetime | None = None) -> list[dt.date]:
    """Distinct days with labelled decisions (an action was chosen)."""
    frame = as_engine(con).query(
        "SELECT DISTINCT CAST(ts AS DATE) AS d FROM decisions "
        "WHERE offer_id IS NOT NULL AND channel IS NOT NULL AND contacted IS NOT NULL "
        "AND (CAST($until AS TIMESTAMP) IS NULL OR ts <= CAST($until AS TIMESTAMP)) ORDER BY d",
        {"until": until},
    )
    return [pd.Timestamp(d).date() for d in frame["d"]]


def pressure_sql(features: Sequence[str], config: NextbestConfig) -> dict[str, tuple[str, float]]:
    """The contact-pressure features among ``features``, as aggregates over a decision ``d`` and the
    decisions ``p`` before it, with the value without any: the feature SQL's definition
    (:func:`nextbest.features.contacts.pressure_features`), not a copy."""
    mine = [f for f in pressure_features(config) if f.name in features]
    sql = pressure_aggregates(mine, age_days("p.ts", "d.ts"), "coalesce(p.contacted, false)", "p.channel")
    return {f.name: (sql[f.name], f.default) for f in mine}


def pressure_query(pressure: Mapping[str, tuple[str, float]]) -> str:
    """``decision_id`` and the ``pressure`` aggregates (:func:`pressure_sql`) of each decision of a
    relation ``d`` (``decision_id``, ``customer_id``, ``ts``) that had a decision with an offer before it
    within the pressure horizon; decisions without one are absent (their values are the defaults)."""
    # A day past the horizon: contacts older than it change no pressure value (days_since_contact is capped).
    return (
        "SELECT d.decision_id, "
        + ", ".join(f"{sql} AS {name}" for name, (sql, _) in pressure.items())
        + " FROM d JOIN decisions p ON p.customer_id = d.customer_id AND p.ts < d.ts"
        f" AND p.ts >= d.ts - to_days({PRESSURE_HORIZON_DAYS + 1}) AND p.offer_id IS NOT NULL"
        " GROUP BY d.decision_id"
    )


def training_set_sql(
    features: Sequence[str], history: Sequence[str], *, with_truth: bool, pressure: Mapping[str, tuple[str, float]] | None = None
) -> str:
    """The training-set statement, for DuckDB and (transpiled) Spark alike.

    Binds ``$window`` (days), ``$until``, ``$outcomes`` and ``$experiments`` (NULL = all).
    Each decision gets the latest customer snapshot, and the latest offer-history row
    of its (customer, offer), at or before its time (:func:`~nextbest.training.asof.asof_match`).
    The ``pressure`` features (:func:`pressure_sql`) are counted at each decision's own time
    from the decision log before it: the snapshot's counts stop at its as-of, up to a week earlier.
    """
    pressure = dict(pressure or {})
    quoted = ", ".join(f's."{f}"' for f in features if f not in pressure)
    pressure_cte = f",\n        pressure AS ({pressure_query(pressure)})" if pressure else ""
    pressure_select = "".join(f", coalesce(pr.{name}, {default!r}) AS {name}" for name, (_, default) in pressure.items())
    pressure_join = "LEFT JOIN pressure pr ON pr.decision_id = snap.decision_id" if pressure else ""
    hist_select = "".join(f', oh."{h}"' for h in history)
    truth_select = ", t.p_contact AS true_p_contact, t.p_control AS true_p_control" if with_truth else ""
    snap_at = asof_match("d", "decision_id", "ts", SNAPSHOT_TABLE, "as_of", ("customer_id",))
    hist_ctes = (
        f",\n        hist_at AS ({asof_match('d', 'decision_id', 'ts', OFFER_HISTORY_TABLE, 'as_of', ('customer_id', 'offer_id'))})"
        if history else ""
    )
    hist_join = (
        "LEFT JOIN hist_at h ON h.decision_id = snap.decision_id "
        f"LEFT JOIN {OFFER_HISTORY_TABLE} oh ON oh.customer_id = snap.customer_id AND oh.offer_id = snap.offer_id "
        "AND oh.as_of = h.matched_as_of"
        if history else ""
    )
    truth_join = f"LEFT JOIN {TRUTH_TABLE} t ON t.decision_id = snap.decision_id" if with_truth else ""
    return f"""
        WITH d AS (
            SELECT {", ".join(DECISION_COLUMNS)}
            FROM decisions
            WHERE offer_id IS NOT NULL AND channel IS NOT NULL AND contacted IS NOT NULL
              AND ts + to_days($window) <= $until
              AND (CAST($experiments AS VARCHAR[]) IS NULL
                   OR list_contains(CAST($experiments AS VARCHAR[]), experiment))
        ),
        lab AS (
            SELECT r.decision_id,
                   bool_or(list_contains($outcomes, r.outcome)) AS label,
                   sum(CASE WHEN r.outcome = 'conversion' THEN coalesce(r.revenue, 0) ELSE 0 END) AS revenue
            FROM responses r JOIN d ON d.decision_id = r.decision_id
            WHERE r.ts >= d.ts AND r.ts < d.ts + to_days($window)
            GROUP BY r.decision_id
        ),
        snap_at AS ({snap_at}),
        snap AS (
            SELECT d.*, m.matched_as_of AS snapshot_as_of, {quoted}
            FROM d
            LEFT JOIN snap_at m ON m.decision_id = d.decision_id
            LEFT JOIN {SNAPSHOT_TABLE} s ON s.customer_id = d.customer_id AND s.as_of = m.matched_as_of
        ){hist_ctes}{pressure_cte}
        SELECT snap.*, coalesce(lab.label, false) AS label, coalesce(lab.revenue, 0.0) AS revenue
               {pressure_select} {hist_select} {truth_select}
        FROM snap
        LEFT JOIN lab ON lab.decision_id = snap.decision_id
        {pressure_join}
        {hist_join}
        {truth_join}
        ORDER BY snap.ts, snap.decision_id
    """


def build_training_set(
    con: duckdb.DuckDBPyConnection | SqlEngine,
    config: NextbestConfig,
    *,
    features: tuple[str, ...],
    categorical: tuple[str, ...] = (),
    offer_history: dict[str, Any] | None = None,
    experiments: tuple[str, ...] | None = None,
) -> TrainingSet:
    """Join every labelled decision to its point-in-time features.

    Parameters
    ----------
    con
        Warehouse connection (read access is enough), or another engine running
        the same SQL (Spark over a lake: :class:`nextbest.spark.features.SparkEngine`).
    config
        Supplies ``training.label`` and ``training.response_window_days``.
    features
        Customer feature columns of ``features.customer_snapshot`` to use
        (the registry's model features). Personal columns are refused.
    categorical
        The categorical ones among ``features``.
    offer_history
        Offer-history columns of ``features.offer_history`` with the value of
        a customer never shown the offer (the registry defaults); ``None``
        or an empty dict skips them.
    experiments
        Only decisions of these experiments (e.g. ``("historical",)``); ``None`` = all.

    Raises
    ------
    NotFoundError
        No feature snapshot table, or no labelled decision.
    BadInputError
        A requested feature column is missing from the snapshot table.
    """
    from nextbest.models.response import assert_no_personal_columns

    assert_no_personal_columns(features)
    training = config.training
    engine = as_engine(con)
    if not engine.has_table(SNAPSHOT_TABLE):
        raise NotFoundError(f"no {SNAPSHOT_TABLE} table; run `nextbest features build` first")
    snapshot_cols = set(engine.columns(SNAPSHOT_TABLE))
    absent = [f for f in features if f not in snapshot_cols]
    if absent:
        raise BadInputError(
            f"{SNAPSHOT_TABLE} lacks feature column(s) {absent}; rebuild the snapshots with `nextbest features build`"
        )
    history = dict(offer_history or {})
    use_history = bool(history) and engine.has_table(OFFER_HISTORY_TABLE)
    if use_history:
        have = set(engine.columns(OFFER_HISTORY_TABLE))
        absent = [f for f in history if f not in have]
        if absent:
            raise BadInputError(f"{OFFER_HISTORY_TABLE} lacks column(s) {absent}; rebuild with `nextbest features build`")
    else:
        history = {}
    with_truth = engine.has_table(TRUTH_TABLE)
    until = observed_until(engine)
    if until is None:
        raise NotFoundError("the warehouse has no decisions; generate or import data first")

    outcomes = LABEL_OUTCOMES[training.label]
    window = int(training.response_window_days)
    sql = training_set_sql(features, tuple(history), with_truth=with_truth, pressure=pressure_sql(features, config))
    params = {
        "window": window,
        "until": until,
        "outcomes": list(outcomes),
        "experiments": list(experiments) if experiments else None,
    }
    frame = engine.query(sql, params)
    n_decisions = len(frame)
    if n_decisions == 0:
        raise NotFoundError(
            f"no decision with a closed {window}-day response window before {until}; "
            "generate more history or wait for responses"
        )
    frame = frame[frame["snapshot_as_of"].notna()].reset_index(drop=True)
    if frame.empty:
        raise NotFoundError(
            "no decision has a feature snapshot at or before its time; build snapshots for the decision dates "
            "(`nextbest features build --snapshots weekly ...`)"
        )
    for h, default in history.items():
        if default is not None:
            frame[h] = frame[h].fillna(default)
    frame["contacted"] = frame["contacted"].astype(bool)
    frame["label"] = frame["label"].astype(bool)
    feature_columns = (*features, *history, *ACTION_COLUMNS)
    lineage = {
        "label": training.label,
        "response_window_days": window,
        "observed_until": str(until),
        "decisions_from": str(frame["ts"].min()),
        "decisions_to": str(frame["ts"].max()),
        "decisions_with_closed_window": n_decisions,
        "decisions_without_snapshot": n_decisions - len(frame),
        "rows": len(frame),
        "snapshot_dates": sorted({str(pd.Timestamp(x).date()) for x in frame["snapshot_as_of"].unique()}),
        "positives": int(frame["label"].sum()),
        "contacted_rows": int(frame["contacted"].sum()),
        "control_rows": int((~frame["contacted"]).sum()),
    }
    fill = {h: float(v) for h, v in history.items() if v is not None}
    return TrainingSet(frame, feature_columns, (*categorical, *ACTION_COLUMNS), lineage, fill)


@dataclass(frozen=True)
class TimeSplit:
    """Boolean masks of a time-based split and its boundaries."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    validation_from: pd.Timestamp
    test_from: pd.Timestamp


def time_split(ts: pd.Series, validation_share: float, test_share: float) -> TimeSplit:
    """Train on the earliest decisions, validate on the next, test on the latest.

    The boundaries are timestamp quantiles, so decisions made at the same
    moment (one campaign run) always land in the same part.

    Raises
    ------
    BadInputError
        If a part would be empty (too few distinct decision times).
    """
    ts = pd.to_datetime(ts).reset_index(drop=True)
    validation_from = ts.quantile(1.0 - validation_share - test_share)
    test_from = ts.quantile(1.0 - test_share)
    train = (ts < validation_from).to_numpy()
    test = (ts >= test_from).to_numpy()
    validation = ~train & ~test
    for name, mask in (("train", train), ("validation", validation), ("test", test)):
        if not mask.any():
            raise BadInputError(
                f"time split: the {name} part is empty ({ts.nunique()} distinct decision times); "
                "generate more history or change training.validation_share / training.test_share"
            )
    return TimeSplit(train, validation, test, validation_from, test_from)
