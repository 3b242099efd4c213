"""Benchmark: rank a large population end to end with a real LightGBM scorer.

Run::

    .venv/bin/python benchmarks/rank.py --customers 1000000 --chunk 50000

For each chunk of customers the engine builds every (offer, channel) candidate
of the default catalogue (20 offers, ~4 channels each), applies the rules and
the contact policy, scores the survivors with a LightGBM S-learner (the
``ResponseModel`` of ``nextbest.models``), arbitrates, explores, allocates
capacities and records the contacts in an in-memory ``ContactHistory``.

Reported: customers/s, peak RSS, the time inside ``Scorer.score``, and the
ratio of the total to the *raw* LightGBM predict time on the same candidate
rows (``Booster.predict`` on the already-encoded matrix, contacted on and off:
the two predictions an uplift score needs). The raw time is measured on a
sample of chunks (``--raw-every``) and scaled by candidate rows. Feature frames
are generated per chunk outside the timed region.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import time

import numpy as np
import pandas as pd

from nextbest.config import load_config
from nextbest.decisioning.engine import DecisionEngine
from nextbest.decisioning.history import ContactHistory
from nextbest.decisioning.synthetic import random_features, random_training_rows
from nextbest.models.lgbm import LGBMResponseClassifier
from nextbest.models.response import ResponseModel
from nextbest.models.uplift import SLearner


class TimedScorer:
    """Delegates to a real scorer and accumulates the time spent in ``score``."""

    def __init__(self, scorer: ResponseModel) -> None:
        self.scorer = scorer
        self.model_version = scorer.model_version
        self.seconds = 0.0
        self.rows = 0

    def score(self, candidates: pd.DataFrame) -> pd.DataFrame:
        t = time.perf_counter()
        out = self.scorer.score(candidates)
        self.seconds += time.perf_counter() - t
        self.rows += len(candidates)
        return out

    def reasons(self, candidates: pd.DataFrame, top: int = 3) -> list[list[str]]:
        return self.scorer.reasons(candidates, top)


def raw_predict_seconds(model: ResponseModel, frame: pd.DataFrame) -> float:
    """Booster.predict time on the encoded candidate matrix, contacted on and off."""
    clf = model.learner_.estimator_
    treatment = model.learner_.treatment_column
    total = 0.0
    for contacted in (True, False):
        matrix = clf.encoder_.transform(frame.assign(**{treatment: contacted}))
        t = time.perf_counter()
        clf.booster_.predict(matrix, num_iteration=clf.booster_.best_iteration or None)
        total += time.perf_counter() - t
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--leaves", type=int, default=31)
    parser.add_argument("--train-rows", type=int, default=100_000)
    parser.add_argument("--raw-every", type=int, default=5, help="Measure raw predict on every n-th chunk.")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    config = load_config()
    X, y = random_training_rows(config, args.train_rows, seed=1)
    clf = LGBMResponseClassifier(
        n_estimators=args.trees, num_leaves=args.leaves, early_stopping_rounds=None, n_jobs=args.threads
    )
    model = ResponseModel(SLearner(clf), calibration="none").fit(X, y)
    model.model_version = "benchmark/1"
    scorer = TimedScorer(model)
    engine = DecisionEngine(config, {"champion": scorer})
    history = ContactHistory.empty(config)
    at = dt.datetime(2024, 6, 3, 9)

    total = 0.0
    rows = 0
    raw_sampled, rows_sampled = 0.0, 0
    contacted = 0
    for i, start in enumerate(range(0, args.customers, args.chunk)):
        n = min(args.chunk, args.customers - start)
        features = random_features(config, n, seed=i, first_id=start + 1)
        t = time.perf_counter()
        out = engine.decide(features, at, seed=0, history=history)
        total += time.perf_counter() - t
        rows += out.candidates
        contacted += int(out.decisions["contacted"].sum())
        if i % args.raw_every == 0:
            sc = engine.score_candidates(features, at)
            raw_sampled += raw_predict_seconds(model, sc.frame)
            rows_sampled += len(sc.frame)
        print(f"chunk {i}: {start + n:,} customers, {total:.1f} s", flush=True)

    raw = raw_sampled * rows / max(rows_sampled, 1)
    # The timed wrapper also ran on the raw-sampling calls: count only the decide calls' share.
    score_in_decide = scorer.seconds * rows / max(scorer.rows, 1)
    result = {
        "customers": args.customers,
        "candidate_rows_scored": rows,
        "candidates_per_customer": rows / args.customers,
        "contacted": contacted,
        "total_s": round(total, 2),
        "customers_per_s": round(args.customers / total),
        "scorer_score_s": round(score_in_decide, 2),
        "raw_lightgbm_predict_s": round(raw, 2),
        "total_over_raw_predict": round(total / raw, 2),
        "decision_logic_s": round(total - score_in_decide, 2),
        "decision_logic_over_raw_predict": round((total - score_in_decide) / raw, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "trees": args.trees,
        "leaves": args.leaves,
        "threads": args.threads,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
