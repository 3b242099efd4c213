"""Benchmark: rank a large population end to end, and serve /rank in-process, per uplift learner.

Run::

    .venv/bin/python benchmarks/rank.py --customers 1000000 --chunk 50000
    .venv/bin/python benchmarks/rank.py --learner all --customers 20000 --chunk 10000 --train-rows 20000

Each learner (``--learner s|t|x|shift|all``; ``--members N`` bags N of each, as
``training.ensemble_members``) is built by the trainer's ``make_model`` (the
configuration's contact-pressure constraints, masked channel, offer context and
calibration) and fitted on generated rows. Then, for that model:

Batch (``nextbest decide``): for each chunk of customers the engine builds every
(offer, channel) candidate of the default catalogue (20 offers, ~4 channels
each), applies the rules and the contact policy, scores the survivors,
arbitrates, explores, allocates capacities and records the contacts in an
in-memory ``ContactHistory``. Reported: customers/s, the time inside the
scorer's ``score`` (the matrix path's, or ``ResponseModel.score`` with
``--frame``), and the ratio of the total to the *raw* LightGBM time on the same
candidate rows (the learner's tree models on the already-encoded rows, both
outcomes: what an uplift score needs). The raw time is measured on a sample of
chunks (``--raw-every``) and scaled by candidate rows. Feature frames are
generated per chunk outside the timed region.

Served (``POST /rank``, in-process, as ``serving/state.py`` and ``serving/runtime.py`` do it): a
snapshot of ``--served`` customers is prepared and encoded once, the trees are
compiled with lleaves when installed (``--no-compile``: LightGBM), every
customer's plan is built (with the reason codes of its first three actions) as
the service does at load, then requests are timed one at a time: *warm* (the
customer's plan is cached: ``rank_planned``), *cold* (a plan-cache miss: the
plan built for that one customer, then ``rank_planned``), and *explain* (a
request asking for the suppressed candidates: ``rank`` on the customer's row).
Reported: snapshot, compile and planning times, and per-request mean and p99.
With ``--frame`` every request is ranked through the candidate DataFrame instead
(``rank_frame``; no plans): how a learner without a matrix path is served.

Peak RSS is the process's, over all learners run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from nextbest import logfile
from nextbest.config import NextbestConfig, load_config
from nextbest.decisioning.documents import Context
from nextbest.decisioning.engine import DecisionEngine, complete_features
from nextbest.decisioning.history import ContactHistory
from nextbest.decisioning.prepared import PreparedCustomers
from nextbest.decisioning.synthetic import random_features, random_training_rows
from nextbest.features.registry import categorical_features, feature_defs, offer_history_features
from nextbest.models.candidate_matrix import CandidateMatrix
from nextbest.models.response import ResponseModel
from nextbest.models.uplift import LEARNERS
from nextbest.training.trainer import base_params, make_model

AT = dt.datetime(2024, 6, 3, 9)


class TimedScorer:
    """Delegates to a real scorer and accumulates the time spent in ``score`` (the DataFrame path)."""

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


class TimedMatrix:
    """Accumulates the time a :class:`CandidateMatrix` spends in ``score`` (wraps the instance's method)."""

    def __init__(self, matrix: CandidateMatrix) -> None:
        self.seconds = 0.0
        self.rows = 0
        score = matrix.score

        def timed(customers: Any, cust: np.ndarray, *args: Any) -> tuple[np.ndarray, np.ndarray]:
            t = time.perf_counter()
            out = score(customers, cust, *args)
            self.seconds += time.perf_counter() - t
            self.rows += len(cust)
            return out

        matrix.score = timed  # type: ignore[method-assign]


def fit_model(config: NextbestConfig, learner: str, args: argparse.Namespace) -> ResponseModel:
    """The trainer's bundle for ``learner`` (``args.members`` bagged), fitted on generated rows."""
    raw = config.model_dump()
    raw["training"]["ensemble_members"] = args.members
    config = NextbestConfig.model_validate(raw)
    X, y = random_training_rows(config, args.train_rows, seed=1)
    params = base_params(config.training) | {
        "n_estimators": args.trees, "num_leaves": args.leaves, "early_stopping_rounds": None, "n_jobs": args.threads,
        "learning_rate": 0.05,
    }
    defaults = {d.name: d.default for d in offer_history_features(feature_defs(config))}
    model = make_model(config, categorical_features(config), defaults, strategy="global", learner=learner,  # type: ignore[arg-type]
                       params=params)
    cut = len(X) * 4 // 5
    model.fit(X.iloc[:cut], y[:cut], X_calibration=X.iloc[cut:], y_calibration=y[cut:])
    model.model_version = f"benchmark-{learner}/1"
    return model


def raw_predict_seconds(model: ResponseModel, frame: pd.DataFrame) -> float:
    """Time of the learner's tree models on the encoded candidate rows (both outcomes), encoding excluded."""
    learner = model.learner_
    encoders = learner.matrix_encoders()
    if encoders is None:
        raise SystemExit(f"{type(learner).__name__} has no matrix path to time")
    derived = model._derive(frame)
    encoded = {id(e): e.transform(derived.assign(**{learner.treatment_column: np.nan})) for e in encoders}
    t = time.perf_counter()
    learner.predict_outcomes_matrix(lambda e: encoded[id(e)])
    return time.perf_counter() - t


def batch(config: NextbestConfig, model: ResponseModel, args: argparse.Namespace) -> dict[str, object]:
    """``nextbest decide`` over ``args.customers`` customers in chunks."""
    timed_scorer = TimedScorer(model) if args.frame else None
    engine = DecisionEngine(config, {"champion": timed_scorer or model})
    timed_matrix = None if args.frame else TimedMatrix(engine.matrix["champion"])
    timer: Any = timed_scorer or timed_matrix
    history = ContactHistory.empty(config)
    total = 0.0
    rows = 0
    raw_sampled, rows_sampled = 0.0, 0
    contacted = 0
    for i, start in enumerate(range(0, args.customers, args.chunk)):
        n = min(args.chunk, args.customers - start)
        features = random_features(config, n, seed=i, first_id=start + 1)
        t = time.perf_counter()
        out = engine.decide(features, AT, seed=0, history=history)
        total += time.perf_counter() - t
        rows += out.candidates
        contacted += int(out.decisions["contacted"].sum())
        if i % args.raw_every == 0:
            seen = (timer.seconds, timer.rows)
            sc = engine.score_candidates(features, AT)
            # The timer also ran on this sampling call: count only the decide calls'.
            timer.seconds, timer.rows = seen
            raw_sampled += raw_predict_seconds(model, sc.frame)
            rows_sampled += len(sc.frame)
        print(f"  chunk {i}: {start + n:,} customers, {total:.1f} s", flush=True)
    raw = raw_sampled * rows / max(rows_sampled, 1)
    score = timer.seconds
    return {
        "path": "frame" if args.frame else "matrix",
        "customers": args.customers,
        "candidate_rows_scored": rows,
        "candidates_per_customer": round(rows / args.customers, 1),
        "contacted": contacted,
        "total_s": round(total, 2),
        "customers_per_s": round(args.customers / total),
        "score_s": round(score, 2),
        "raw_lightgbm_predict_s": round(raw, 2),
        "total_over_raw_predict": round(total / raw, 2),
        "decision_logic_s": round(total - score, 2),
    }


def timings(f: Callable[[int], object], n: int) -> dict[str, float]:
    """Mean and p99 milliseconds of ``f(i)`` for ``i < n``."""
    ms = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        f(i)
        ms[i] = (time.perf_counter() - t) * 1000
    return {"mean_ms": round(float(ms.mean()), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def served(config: NextbestConfig, model: ResponseModel, args: argparse.Namespace) -> dict[str, object]:
    """``POST /rank`` in-process: snapshot, compiled trees, plans, then single requests."""
    engine = DecisionEngine(config, {"champion": model}, matrix_scoring=not args.frame)
    matrix = engine.matrix.get("champion")
    features = random_features(config, args.served, seed=99, first_id=1)
    columns = list(features.columns[1:])
    t = time.perf_counter()
    known = engine.prepare(features).encode_all()
    blank = engine.prepare(complete_features(features.iloc[:0], np.array([-1], dtype=np.int64), columns)).encode_all()
    block = PreparedCustomers.concat([known, blank], frame_of=lambda ids: features).remember_reasons(200_000)
    snapshot_s = time.perf_counter() - t
    rng = np.random.default_rng(0)
    n = min(args.requests, args.served)
    pick = rng.choice(args.served, n, replace=False)
    ids = features["customer_id"].to_numpy()
    history = ContactHistory.empty(config)
    context = Context()
    if matrix is None:
        # How a scorer without a matrix path is served: every /rank through the candidate DataFrame, no plans.
        def frame_rank(i: int) -> object:
            return engine.rank(block.take(pick[i : i + 1], ids=ids[pick[i : i + 1]]), AT, context, 3, i, history=history)

        return {"customers": args.served, "path": "frame", "rank_frame": timings(frame_rank, n)}
    compiled, compile_s = False, 0.0
    if not args.no_compile:
        t = time.perf_counter()
        compiled = matrix.compile(block.encoded("champion"))
        compile_s = time.perf_counter() - t
    t = time.perf_counter()
    plans = []
    for start in range(0, args.served, 1000):  # the service's plan_everyone(chunk=batch_chunk)
        pos = np.arange(start, min(start + 1000, args.served))
        plans += engine.plans(block.take(pos), AT, context, reasons=3)
    plan_s = time.perf_counter() - t

    def warm(i: int) -> object:
        return engine.rank_planned(plans[pick[i]], block, AT, 3, i, history=history)

    def cold(i: int) -> object:
        plan = engine.plans(block.take(pick[i : i + 1]), AT, context, reasons=3)[0]
        return engine.rank_planned(plan, block, AT, 3, i, history=history)

    def explain(i: int) -> object:
        customer = block.take(pick[i : i + 1], ids=ids[pick[i : i + 1]])
        return engine.rank(customer, AT, context, 3, i, history=history, suppressed=True)

    return {
        "customers": args.served,
        "compiled_trees": compiled,
        "snapshot_s": round(snapshot_s, 2),
        "compile_s": round(compile_s, 2),
        "plans_customers_per_s": round(args.served / plan_s),
        "rank_warm": timings(warm, n),
        "rank_cold": timings(cold, n),
        "rank_explain": timings(explain, n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--learner", choices=[*LEARNERS, "all"], default="s", help="Uplift learner(s) to measure.")
    parser.add_argument("--members", type=int, default=1, help="Bag this many of the learner (ensemble_members).")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--leaves", type=int, default=31)
    parser.add_argument("--train-rows", type=int, default=100_000)
    parser.add_argument("--raw-every", type=int, default=5, help="Measure raw predict on every n-th chunk.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frame", action="store_true",
                        help="Score through ResponseModel.score (the DataFrame path, as learners without a matrix path are).")
    parser.add_argument("--served", type=int, default=5000, help="Customers in the served snapshot (0: skip).")
    parser.add_argument("--requests", type=int, default=500, help="Timed /rank requests of each kind.")
    parser.add_argument("--no-compile", action="store_true", help="Serve with LightGBM, not lleaves-compiled trees.")
    args = parser.parse_args()

    config = load_config()
    results: dict[str, object] = {}
    for learner in LEARNERS if args.learner == "all" else [args.learner]:
        name = learner if args.members == 1 else f"bagged-{args.members}-{learner}"
        print(f"{name}: fitting", flush=True)
        t = time.perf_counter()
        model = fit_model(config, learner, args)
        fit_s = time.perf_counter() - t
        out: dict[str, object] = {"fit_s": round(fit_s, 1)}
        if args.customers > 0:
            out["batch"] = batch(config, model, args)
        if args.served > 0:
            out["served"] = served(config, model, args)
        results[name] = out
        print(json.dumps({name: out}, indent=2), flush=True)
    print(json.dumps({
        "trees": args.trees, "leaves": args.leaves, "threads": args.threads, "members": args.members,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))
    if len(results) > 1:
        print(f"\n{'learner':<18}{'decide cust/s':>14}{'score s':>9}{'raw s':>8}{'plans cust/s':>14}"
              f"{'warm ms':>9}{'cold ms':>9}{'explain ms':>11}")
        for name, out in results.items():
            b: dict[str, Any] = out.get("batch", {})  # type: ignore[assignment, union-attr]
            s: dict[str, Any] = out.get("served", {})  # type: ignore[assignment, union-attr]
            print(f"{name:<18}{b.get('customers_per_s', ''):>14}{b.get('score_s', ''):>9}{b.get('raw_lightgbm_predict_s', ''):>8}"
                  f"{s.get('plans_customers_per_s', ''):>14}{s.get('rank_warm', {}).get('mean_ms', ''):>9}"
                  f"{s.get('rank_cold', {}).get('mean_ms', ''):>9}"
                  f"{s.get('rank_explain', s.get('rank_frame', {})).get('mean_ms', ''):>11}")


if __name__ == "__main__":
    logfile.route_script_output(__file__)
    np.seterr(all="ignore")
    main()
