"""Training benchmark: training-set build + training on millions of decisions, and scoring throughput.

Writes a synthetic exposure log (:mod:`nextbest.training.synthetic`: decisions,
responses, weekly feature snapshots, ground truth) into a temporary warehouse,
then times

1. the point-in-time training-set build (DuckDB ASOF joins),
2. ``run_training`` (fit with early stopping, calibration, value model, test
   metrics, figures, MLflow logging and registration),
3. loading the registered model (``load_scorer``),
4. prediction throughput of the registered model (``Scorer.score``: two
   booster passes for p_contact/p_control, calibration, value model) against a
   raw ``lightgbm.Booster.predict`` of the same rows.

Usage::

    python benchmarks/train.py [--decisions 2000000] [--customers 200000] [--noise-features 20] [--threads 1]

Prints wall times, peak RSS (``resource.getrusage``) and rows/s.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from nextbest import logfile
from nextbest.models.registry import load_scorer
from nextbest.models.uplift_base import frame_rows
from nextbest.training.dataset import build_training_set
from nextbest.training.synthetic import SYNTHETIC_CATEGORICAL, SyntheticSpec, write_synthetic_log
from nextbest.training.trainer import TRAINING_SET_MEMORY, TrainOptions, run_training
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=2_000_000)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--noise-features", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads (training.n_jobs)")
    parser.add_argument("--score-rows", type=int, default=200_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.resolve(Path(tmp) / "ws")
        ws.init_config()
        spec = SyntheticSpec(customers=args.customers, decisions=args.decisions, days=args.days,
                             noise_features=args.noise_features)
        t0 = time.perf_counter()
        con = connect(ws.warehouse_path)
        write_synthetic_log(con, spec)
        t_gen = time.perf_counter() - t0

        t0 = time.perf_counter()
        con.close()
        con = connect(ws.warehouse_path, read_only=True, memory_limit=TRAINING_SET_MEMORY)  # as `nextbest train`
        data = build_training_set(con, ws.config(), features=spec.features, categorical=SYNTHETIC_CATEGORICAL)
        con.close()
        t_build = time.perf_counter() - t0
        rss_build = peak_rss_mib()

        config = ws.config()
        config = config.model_copy(update={"training": config.training.model_copy(update={"n_jobs": args.threads})})
        t0 = time.perf_counter()
        result = run_training(ws, config, data, TrainOptions())
        t_train = time.perf_counter() - t0

        t0 = time.perf_counter()
        scorer = load_scorer(ws.tracking_uri)
        t_load = time.perf_counter() - t0

        rows = data.frame.iloc[: args.score_rows]
        scorer.score(rows.iloc[:1000])  # warm-up
        t0 = time.perf_counter()
        scorer.score(rows)
        t_score = time.perf_counter() - t0

        # The learner's trees alone (every model it reads, both outcomes) on matrices encoded beforehand.
        encoded = frame_rows(scorer.learner_, scorer._derive(rows.assign(contacted=True)))

        def on_threads(model: Any, matrix: np.ndarray, raw_score: bool) -> np.ndarray:
            return model.booster_.predict(matrix, raw_score=raw_score, num_threads=args.threads)  # type: ignore[no-any-return]

        t0 = time.perf_counter()
        scorer.learner_.predict_outcomes_matrix(encoded, on_threads)
        t_raw = time.perf_counter() - t0

        print(f"decisions generated     {args.decisions:>12,}  ({t_gen:.1f} s, synthetic log incl. snapshots)")
        print(f"training rows           {len(data.frame):>12,}  features {len(data.feature_columns)}")
        print(f"training-set build      {t_build:>10.1f} s   peak RSS so far {rss_build:,.0f} MiB")
        print(f"run_training            {t_train:>10.1f} s   (fit, calibrate, evaluate, log, register; "
              f"{args.threads} thread(s); {result.params.get('n_estimators')} max rounds)")
        print(f"build + train           {t_build + t_train:>10.1f} s")
        print(f"load_scorer             {t_load * 1000:>10.0f} ms")
        print(f"Scorer.score            {len(rows) / t_score:>12,.0f} rows/s  ({len(rows):,} rows, {t_score:.2f} s)")
        print(f"trees alone (raw)       {len(rows) / t_raw:>12,.0f} rows/s  (both outcomes, matrices encoded beforehand)")
        print(f"peak RSS                {peak_rss_mib():>10,.0f} MiB")
        print(f"test_auc {result.metrics['test_auc']:.4f}  oracle_auc {result.metrics['oracle_auc']:.4f}  "
              f"uplift_spearman {result.metrics['uplift_spearman']:.3f}")


if __name__ == "__main__":
    logfile.route_script_output(__file__)
    main()
