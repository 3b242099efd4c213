"""A synthetic exposure log with known response probabilities.

This writes only what training reads: ``decisions``, ``responses``, weekly
``features.customer_snapshot`` rows and ``ground_truth.decision_truth``. It
exists for tests and the training benchmark, which need millions of labelled
decisions in seconds and exact control over leakage; realistic customer
behaviour is :mod:`nextbest.world`'s job.

Every step is vectorised numpy and each table is appended in one Arrow insert.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from nextbest.training.dataset import SNAPSHOT_TABLE, TRUTH_TABLE

#: Customer features of the synthetic snapshots (a subset of the registry's names).
SYNTHETIC_FEATURES: tuple[str, ...] = ("age", "urbanity", "engagement_score", "recency_days", "monetary_365d")
SYNTHETIC_CATEGORICAL: tuple[str, ...] = ("urbanity",)
_URBANITY = np.array(["urban", "suburban", "rural"])


@dataclass(frozen=True)
class SyntheticSpec:
    """Size and shape of the synthetic log.

    Attributes
    ----------
    customers, decisions
        Number of customers and of decisions.
    days
        Decisions are spread uniformly over this many days from ``start``.
    offers, channels
        Action space (ids).
    control_share
        Share of decisions in the control arm (not contacted).
    noise_features
        Extra uninformative numeric features (``noise_0`` ...), to size the benchmark.
    seed
        Random seed.
    """

    customers: int = 2_000
    decisions: int = 20_000
    days: int = 120
    offers: tuple[str, ...] = ("fashion_sale", "sports_gear", "book_club", "garden_season")
    channels: tuple[str, ...] = ("email", "sms", "web")
    control_share: float = 0.2
    noise_features: int = 0
    start: dt.date = dt.date(2024, 1, 1)
    seed: int = 0

    @property
    def features(self) -> tuple[str, ...]:
        return (*SYNTHETIC_FEATURES, *(f"noise_{i}" for i in range(self.noise_features)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def write_synthetic_log(con: duckdb.DuckDBPyConnection, spec: SyntheticSpec) -> pd.DataFrame:
    """Write the synthetic tables into ``con`` and return the decisions with their truth.

    The true model: a base log-odds rising with engagement and falling with
    recency, an offer effect, and a contact effect (the uplift) that is positive
    for engaged urban customers on e-mail, negative for recent buyers on SMS.
    Features change weekly (engagement drifts), so point-in-time joins matter.
    """
    rng = np.random.default_rng(spec.seed)
    n, m = spec.customers, spec.decisions
    start = pd.Timestamp(spec.start)
    weeks = spec.days // 7 + 2
    snap_dates = start + pd.to_timedelta(np.arange(weeks) * 7, unit="D")

    # Customer state per weekly snapshot: static profile, drifting engagement.
    age = rng.uniform(18, 85, n)
    urbanity = rng.integers(0, 3, n)
    engagement = np.abs(rng.normal(3, 2, (weeks, n)).cumsum(axis=0) / np.sqrt(np.arange(1, weeks + 1))[:, None])
    recency = rng.exponential(60, (weeks, n))
    monetary = rng.gamma(2.0, 80.0, n)

    snap = pd.DataFrame(
        {
            "as_of": np.repeat(snap_dates.to_numpy(), n),
            "customer_id": np.tile(np.arange(1, n + 1, dtype=np.int64), weeks),
            "age": np.tile(age, weeks),
            "urbanity": np.tile(_URBANITY[urbanity], weeks),
            "engagement_score": engagement.ravel(),
            "recency_days": recency.ravel(),
            "monetary_365d": np.tile(monetary, weeks),
        }
    )
    for i in range(spec.noise_features):
        snap[f"noise_{i}"] = rng.normal(size=len(snap))

    # Decisions: random customer, time, offer and channel; contact with prob 1 - control_share.
    cust = rng.integers(0, n, m)
    seconds = rng.integers(0, spec.days * 86_400, m)
    ts = start + pd.to_timedelta(np.sort(seconds), unit="s")
    week = ((ts - start).days // 7).to_numpy()
    offer = rng.integers(0, len(spec.offers), m)
    channel = rng.integers(0, len(spec.channels), m)
    contacted = rng.random(m) >= spec.control_share

    e = engagement[week, cust]
    r = recency[week, cust]
    urban = urbanity[cust] == 0
    offer_effect = np.linspace(-0.4, 0.4, len(spec.offers))[offer]
    base = -4.4 + 0.25 * e - 0.006 * r + offer_effect + 0.004 * (age[cust] - 50)
    is_email = np.asarray(spec.channels)[channel] == "email"
    is_sms = np.asarray(spec.channels)[channel] == "sms"
    effect = 0.2 + 0.5 * urban * np.minimum(e, 6) / 6 + 0.4 * is_email - 0.8 * is_sms * (r < 30)
    p_control = _sigmoid(base)
    p_contact = _sigmoid(base + effect)
    p = np.where(contacted, p_contact, p_control)
    converted = rng.random(m) < p

    decision_ids = np.char.add("syn-", np.arange(m).astype(str))
    decisions = pd.DataFrame(
        {
            "decision_id": decision_ids,
            "customer_id": (cust + 1).astype(np.int64),
            "ts": ts,
            "offer_id": np.asarray(spec.offers)[offer],
            "channel": np.asarray(spec.channels)[channel],
            "arm": np.where(contacted, "random", "control"),
            "experiment": "historical",
            "propensity": 1.0 / (len(spec.offers) * len(spec.channels)),
            "model_version": None,
            "score": None,
            "contacted": contacted,
        }
    )
    offer_value = np.linspace(30, 120, len(spec.offers))[offer]
    lag = pd.to_timedelta(rng.uniform(0, 13 * 86_400, m).astype(np.int64), unit="s")
    responses = pd.DataFrame(
        {
            "decision_id": decision_ids[converted],
            "ts": (ts + lag)[converted],
            "outcome": "conversion",
            "revenue": (offer_value * rng.lognormal(0, 0.3, m))[converted],
        }
    )
    truth = pd.DataFrame(
        {
            "decision_id": decision_ids,
            "customer_id": decisions["customer_id"],
            "p_contact": p_contact,
            "p_control": p_control,
            "expected_revenue": offer_value,
        }
    )

    cols = ", ".join(f'"{c}" DOUBLE' if c != "urbanity" else '"urbanity" VARCHAR' for c in spec.features)
    con.execute("CREATE SCHEMA IF NOT EXISTS features")
    con.execute(f"CREATE TABLE IF NOT EXISTS {SNAPSHOT_TABLE} (as_of TIMESTAMP, customer_id BIGINT, {cols})")
    con.execute("CREATE SCHEMA IF NOT EXISTS ground_truth")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {TRUTH_TABLE} (decision_id VARCHAR, customer_id BIGINT, "
        "p_contact DOUBLE, p_control DOUBLE, expected_revenue DOUBLE)"
    )
    for table, frame in ((SNAPSHOT_TABLE, snap), ("decisions", decisions), ("responses", responses), (TRUTH_TABLE, truth)):
        con.register("_synthetic_frame", frame)
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _synthetic_frame")
        con.unregister("_synthetic_frame")
    return decisions.assign(p_contact=p_contact, p_control=p_control, label=converted)
