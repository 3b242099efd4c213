"""Point-in-time feature builds: one row per customer from data strictly before ``as_of``.

>>> frame = build_features(con, "2024-06-30", config)           # fits the feature models at as_of
>>> models = fit_feature_models(con, "2024-01-01", config)      # or fit once on a training snapshot
>>> frame = build_features(con, "2024-06-30", config, models=models)

Everything but the two fitted features (``basket_cluster``, ``clv_12m``) is one
SQL statement over the point-in-time views (:mod:`.pit`) composed from the
feature groups; no Python touches individual events or customers. ``con`` is the
DuckDB warehouse or any :class:`~nextbest.warehouse.engine.SqlEngine` running the
same statement (Spark over a lake, transpiled: :mod:`nextbest.spark.features`);
the fitted features run here, on the result, whichever engine computed it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd
from nextbest.features import (
    affinity,
    attributes,
    baskets,
    contacts,
    demand,
    engagement,
    events,
    interest,
    profile,
    reachability,
    value,
)
from nextbest.features.baskets import BasketClusterer
from nextbest.features.clv import ClvRegressor
from nextbest.features.fitted import FeatureModels
from nextbest.features.offer_history import offer_history_sql
from nextbest.features.pit import customer_columns
from nextbest.features.query import compose
from nextbest.warehouse.attributes import ensure_attribute_columns
from nextbest.features.registry import (
    FeatureDef,
    basket_categories,
    customer_features,
    definition_hash,
    feature_defs,
)
from nextbest.warehouse.value_basis import ValueBasis, value_basis

from nextbest.config import NextbestConfig, load_config
from nextbest.errors import BadInputError
from nextbest.warehouse.engine import SqlEngine, as_engine

#: A warehouse connection, or any engine running the same SQL (Spark over a lake).
Con = duckdb.DuckDBPyConnection | SqlEngine

#: Group modules, in the order their columns appear (the registry fixes the final order).
GROUPS = (profile, engagement, value, baskets, reachability, events, interest, affinity, demand, contacts, attributes)

AsOf = dt.datetime | dt.date | str | pd.Timestamp


def as_timestamp(as_of: AsOf, *, field: str = "as_of") -> pd.Timestamp:
    """Parse an as-of time (a date means its midnight: data of that day is *not* included)."""
    try:
        ts = pd.Timestamp(as_of)
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"{field}: {as_of!r} is not a date or timestamp; use e.g. 2024-06-30") from exc
    if ts is pd.NaT:
        raise BadInputError(f"{field}: a date or timestamp is required, e.g. 2024-06-30")
    return ts.tz_convert(None) if ts.tzinfo else ts


def sql_features(config: NextbestConfig) -> tuple[FeatureDef, ...]:
    """Customer features computed by SQL (everything but the fitted ones)."""
    return tuple(f for f in customer_features(feature_defs(config)) if not f.fitted)


def clv_inputs(config: NextbestConfig) -> list[str]:
    """Inputs of the CLV regressor: the numeric and boolean SQL features."""
    return [f.name for f in sql_features(config) if f.dtype != "category"]


def share_columns(config: NextbestConfig) -> list[str]:
    """The spend-share columns the basket clusterer reads."""
    return [f"spend_share_{c}" for c in basket_categories(config)]


def check_warehouse(con: Con, config: NextbestConfig) -> None:
    """Fail early, naming the fix, if the customers table lacks a column the config names."""
    have = set(as_engine(con).columns("customers"))
    if not have:
        raise BadInputError("the warehouse has no customers table; import data or run `nextbest data generate`")
    # Declared attributes new to the warehouse become columns first; a lake is the user's to extend.
    if isinstance(con, duckdb.DuckDBPyConnection) and ensure_attribute_columns(con, config):
        have = set(as_engine(con).columns("customers"))
    missing = [c for c in customer_columns(config) if c not in have]
    if missing:
        raise BadInputError(
            f"customers lacks column(s) {missing} that channels.yaml (consent_field / validity_field) or the "
            "feature pipeline reads; add the column(s) or fix channels.yaml"
        )


def _params(as_of: pd.Timestamp, customer_ids: Sequence[int] | None) -> dict[str, object]:
    params: dict[str, object] = {"as_of": as_of.to_pydatetime()}
    if customer_ids is not None:
        params["customer_ids"] = [int(i) for i in customer_ids]
    return params


def compute_sql_features(con: Con, as_of: AsOf, config: NextbestConfig, *,
                         customer_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """The SQL features as of ``as_of`` (no fitted ones), one row per customer sorted by id."""
    ts = as_timestamp(as_of)
    check_warehouse(con, config)
    groups = [g.query(config) for g in GROUPS]
    sql = compose(config, groups, sql_features(config), filtered=customer_ids is not None)
    return as_engine(con).query(sql, _params(ts, customer_ids))


def clv_training_frame(con: Con, as_of: AsOf, config: NextbestConfig,
                       basis: ValueBasis | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Training data of the CLV regressor fitted at ``as_of``: features at ``as_of - label_days``
    and each customer's value in ``[as_of - label_days, as_of)``, measured on ``basis``
    (default: what the warehouse's transactions carry, :func:`value_basis`)."""
    fc = config.features
    basis = basis or value_basis(con, config)
    ts = as_timestamp(as_of)
    start = ts - pd.Timedelta(days=fc.clv_label_days)
    engine = as_engine(con)
    ids = engine.query(
        "SELECT customer_id FROM customers WHERE member_since IS NULL OR CAST(member_since AS TIMESTAMP) < $start "
        "ORDER BY customer_id", {"start": start.to_pydatetime()},
    )["customer_id"].to_numpy(np.int64)
    sample: np.ndarray | None = None
    if len(ids) > fc.clv_max_train_rows:
        rng = np.random.default_rng(fc.seed)
        sample = np.sort(rng.choice(ids, fc.clv_max_train_rows, replace=False))
    X = compute_sql_features(con, start, config, customer_ids=None if sample is None else sample.tolist())
    label = engine.query(
        f"SELECT customer_id, sum({basis.value_sql}) AS value FROM transactions "
        "WHERE ts >= $start AND ts < $as_of GROUP BY customer_id",
        {"start": start.to_pydatetime(), "as_of": ts.to_pydatetime()},
    )
    y = X[["customer_id"]].merge(label, on="customer_id", how="left")["value"].fillna(0.0).to_numpy()
    return X, y


def fit_feature_models(con: Con, as_of: AsOf, config: NextbestConfig, *,
                       features: pd.DataFrame | None = None) -> FeatureModels:
    """Fit the basket clusterer and the CLV regressor on data strictly before ``as_of``.

    Parameters
    ----------
    features
        :func:`compute_sql_features` at ``as_of`` if already computed (saves a pass).
    """
    ts = as_timestamp(as_of)
    fc = config.features
    if features is None:
        features = compute_sql_features(con, ts, config)
    clusterer = BasketClusterer(fc.basket_clusters, fc.cluster_max_train_rows, fc.seed).fit(
        features[share_columns(config)]
    )
    basis = value_basis(con, config)
    X, y = clv_training_frame(con, ts, config, basis)
    clv = ClvRegressor(basis=basis.basis, margin_rate=fc.margin_rate, label_days=fc.clv_label_days,
                       min_customers=fc.clv_min_customers, random_state=fc.seed)
    clv.fit(X[clv_inputs(config)], y)
    return FeatureModels(definition_hash(config), ts, clusterer, clv)


def build_features(con: Con, as_of: AsOf, config: NextbestConfig, *,
                   models: FeatureModels | None = None,
                   customer_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """Every customer feature as of ``as_of``, from data strictly before it.

    Parameters
    ----------
    con
        Warehouse connection (read-only is enough).
    as_of
        The as-of time; a date means its midnight.
    config
        Feature definitions (windows, weights, channels, categories).
    models
        Fitted feature models; ``None`` fits them at ``as_of`` (no leakage either way,
        as long as ``models.fitted_as_of <= as_of``).
    customer_ids
        Only these customers (a 360° view); ``None`` = everyone.

    Returns
    -------
    DataFrame
        ``customer_id`` + one column per customer feature in registry order, sorted by id.
        Missing history gives the registry defaults (zero counts, ``false`` flags,
        ``'awareness'``); undefined values (recency without orders, unknown age) are NaN.
    """
    ts = as_timestamp(as_of)
    if models is not None and not models.matches(config):
        raise BadInputError("the feature models were fitted for other feature definitions; "
                            "rebuild with `nextbest features build --refit`")
    if models is not None and models.fitted_as_of > ts:
        raise BadInputError(f"feature models fitted as of {models.fitted_as_of} would leak into a build as of "
                            f"{ts}; fit them at or before the earliest snapshot (--refit)")
    frame = compute_sql_features(con, ts, config, customer_ids=customer_ids)
    if models is None:
        models = fit_feature_models(con, ts, config, features=frame if customer_ids is None else None)
    return apply_models(frame, models, config)


def fit_and_build(con: Con, as_of: AsOf, config: NextbestConfig,
                  ) -> tuple[pd.DataFrame, FeatureModels]:
    """Fit the feature models at ``as_of`` and build that snapshot with one SQL pass."""
    frame = compute_sql_features(con, as_of, config)
    models = fit_feature_models(con, as_of, config, features=frame)
    return apply_models(frame, models, config), models


def apply_models(frame: pd.DataFrame, models: FeatureModels, config: NextbestConfig) -> pd.DataFrame:
    """Add the fitted features to :func:`compute_sql_features` output, in registry order."""
    frame = frame.copy()
    frame["basket_cluster"] = models.clusterer.predict(frame[share_columns(config)])
    frame["clv_12m"] = models.clv.predict(frame[list(models.clv.feature_names_in_)])
    names = [f.name for f in customer_features(feature_defs(config))]
    out = frame[["customer_id", *names]]
    # Same string dtype as the SQL categories (the clusterer returns an object array).
    return out.astype({"basket_cluster": frame["journey_stage"].dtype})


def build_offer_history(con: Con, as_of: AsOf, config: NextbestConfig | None = None, *,
                        customer_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """Customer × offer history as of ``as_of``: ``customer_id, offer_id, shown_30d, shown_90d,
    days_since_shown, responded_before, converted_before`` (only pairs ever shown)."""
    ts = as_timestamp(as_of)
    sql = offer_history_sql(config or load_config(None), filtered=customer_ids is not None)
    return as_engine(con).query(sql, _params(ts, customer_ids))
