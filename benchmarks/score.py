"""Benchmark: the scoring and ranking hot path (models + decisioning).

Run::

    .venv/bin/python benchmarks/score.py                        # synthetic model and customers
    .venv/bin/python benchmarks/score.py --workspace /tmp/perfws  # a trained workspace's champion

With ``--workspace`` the champion of the workspace's registry, its latest
feature snapshot, contact history and customer profiles are used (build one
with ``nextbest -w /tmp/perfws data generate --customers 5000 --days 120 --seed 3
&& nextbest -w /tmp/perfws train``); otherwise a LightGBM S-learner is fitted
on synthetic rows (:mod:`nextbest.decisioning.synthetic`) and customers are random.

Printed:

1. ``Scorer.score`` rows/s against the learner's trees alone on the same candidate
   rows (raw = every booster pass an uplift score needs, both outcomes, on matrices
   encoded beforehand);
2. single-customer ``DecisionEngine.rank`` latency p50/p95/p99 over ``--calls``
   calls (explained, with history and offer history, as the service calls it),
   wall clock and CPU time of this process (on a shared machine CPU time is the
   steadier figure);
3. batch ``rank`` customers/s in chunks of 1,000 and 25,000 (not explained, as
   the service's batch endpoint);
4. peak RSS.

LightGBM runs on the model's configured thread count (``training.n_jobs``, 1 by default).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nextbest import logfile
from nextbest.config import NextbestConfig, load_config
from nextbest.decisioning.documents import Context
from nextbest.decisioning.engine import DecisionEngine, complete_features
from nextbest.decisioning.history import ContactHistory
from nextbest.decisioning.synthetic import random_features, random_training_rows
from nextbest.models.encoding import with_columns
from nextbest.models.lgbm import LGBMResponseClassifier
from nextbest.models.response import ResponseModel
from nextbest.models.s_learner import SLearner
from nextbest.models.uplift_base import frame_rows


@dataclass
class Setup:
    """What the measurements run on."""

    config: NextbestConfig
    model: ResponseModel
    features: pd.DataFrame
    offer_history: pd.DataFrame | None
    history: ContactHistory
    profiles: pd.DataFrame | None
    at: dt.datetime


def synthetic_setup(customers: int, trees: int) -> Setup:
    config = load_config()
    X, y = random_training_rows(config, 100_000, seed=1)
    clf = LGBMResponseClassifier(n_estimators=trees, early_stopping_rounds=None, n_jobs=config.training.n_jobs)
    model = ResponseModel(SLearner(clf), calibration="none").fit(X, y)
    model.model_version = "benchmark/1"
    features = random_features(config, customers, seed=0)
    return Setup(config, model, features, None, ContactHistory.empty(config), None, dt.datetime(2024, 6, 3, 9))


def workspace_setup(path: str, customers: int) -> Setup:
    from nextbest.decisioning.cli import load_scorers
    from nextbest.features.snapshots import read_snapshot
    from nextbest.features.store import FeatureStore
    from nextbest.warehouse.db import connect
    from nextbest.workspace import Workspace

    ws = Workspace.resolve(path)
    config = ws.config()
    model = load_scorers(ws, config)["champion"]
    con = connect(ws.warehouse_path, read_only=True)
    try:
        as_of, base, hist = read_snapshot(con, config, None)
        at = pd.Timestamp(as_of).to_pydatetime()
        history = ContactHistory.load(con, config, at)
        profiles = con.execute("SELECT customer_id, first_name, gender FROM customers").df()
    finally:
        con.close()
    # Repeat the snapshot's customers under new ids up to the requested population.
    reps = -(-customers // len(base))
    features = pd.concat([base.assign(customer_id=base["customer_id"] + k * 10**8) for k in range(reps)], ignore_index=True)
    offer_history = pd.concat([hist.assign(customer_id=hist["customer_id"] + k * 10**8) for k in range(reps)], ignore_index=True)
    # Through the feature store, as the scoring service reads them.
    store = FeatureStore(features.iloc[:customers], offer_history, as_of)
    features = store.get(features["customer_id"].to_numpy()[:customers]).reset_index(drop=True)
    return Setup(config, model, features, store.offer_history(features["customer_id"]), history, profiles, at)


def percentiles(ms: list[float]) -> dict[str, float]:
    p = np.percentile(ms, [50, 95, 99])
    return {"p50_ms": round(float(p[0]), 3), "p95_ms": round(float(p[1]), 3), "p99_ms": round(float(p[2]), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", help="Trained workspace to take the model and customers from.")
    parser.add_argument("--customers", type=int, default=50_000, help="Customers for the batch measurements.")
    parser.add_argument("--score-customers", type=int, default=20_000, help="Customers whose candidates are scored.")
    parser.add_argument("--calls", type=int, default=500, help="Single-customer rank calls.")
    parser.add_argument("--trees", type=int, default=100, help="Trees of the synthetic model.")
    args = parser.parse_args()

    s = workspace_setup(args.workspace, args.customers) if args.workspace else synthetic_setup(args.customers, args.trees)
    engine = DecisionEngine(s.config, {"champion": s.model})
    features, model = s.features, s.model

    def offer_history_of(frame: pd.DataFrame) -> pd.DataFrame | None:
        if s.offer_history is None:
            return None
        return s.offer_history[s.offer_history["customer_id"].isin(frame["customer_id"])]

    # 1. Scorer.score against the raw booster on the same candidate rows.
    part = features.iloc[: args.score_customers]
    frame = engine.score_candidates(part, s.at, offer_history=offer_history_of(part)).frame
    model.score(frame.iloc[:1000])  # warm-up
    t0 = time.perf_counter()
    model.score(frame)
    t_score = time.perf_counter() - t0
    # The learner's trees alone (every model it reads, both outcomes) on matrices encoded beforehand.
    encoded = frame_rows(model.learner_, with_columns(model._derive(frame), {model.learner_.treatment_column: True}))
    t0 = time.perf_counter()
    model.learner_.predict_outcomes_matrix(encoded)
    t_raw = time.perf_counter() - t0

    # 2. Single-customer rank, as the service calls it.
    columns = list(features.columns[1:])
    wall, cpu = [], []
    for i in range(args.calls + 20):
        one = features.iloc[[i % len(features)]].reset_index(drop=True)
        one = complete_features(one, one["customer_id"].to_numpy(), columns)
        oh = offer_history_of(one)
        w0, c0 = time.perf_counter(), time.process_time()
        engine.rank(one, s.at, Context(), 3, None, history=s.history, offer_history=oh, profiles=s.profiles)
        if i >= 20:  # warm-up calls excluded
            wall.append((time.perf_counter() - w0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)

    # 3. Batch ranking.
    batch: dict[str, float] = {}
    for chunk in (1_000, 25_000):
        n = min(len(features), max(chunk, 25_000))
        history = ContactHistory.empty(s.config)
        seconds = 0.0
        for start in range(0, n, chunk):
            part = features.iloc[start : start + chunk].reset_index(drop=True)
            oh = offer_history_of(part)
            t0 = time.perf_counter()
            engine.rank(part, s.at, Context(), 3, 0, history=history, offer_history=oh, profiles=s.profiles, explain=False)
            seconds += time.perf_counter() - t0
        batch[f"chunk_{chunk}_customers_per_s"] = round(n / seconds)

    result = {
        "model": model.model_version,
        "lightgbm_threads": s.config.training.n_jobs,
        "candidate_rows": len(frame),
        "score_rows_per_s": round(len(frame) / t_score),
        "raw_booster_rows_per_s_both_arms": round(len(frame) / t_raw),
        "score_over_raw": round(t_score / t_raw, 2),
        "single_rank_wall": percentiles(wall),
        "single_rank_cpu": percentiles(cpu),
        "batch_rank": batch,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    logfile.route_script_output(__file__)
    main()
