"""Can a validation measure tell better uplift models from worse? Tuning objectives against the truth.

Tuning (``training/tuning.py``) picks LightGBM parameters by a measure computed on the
validation rows, the only rows a user has for it. On a generated world the truth says
which parameters really rank uplift better, so the measures can be checked: this fits the
configured learner once per parameter set (the configuration, then random draws from the
tuning's search space) on the train rows, and prints per set

* the observable validation measures a tuning could minimise or maximise: log loss
  (today's objective), the tau-risk of the transformed outcome (``y (t - e) / (e (1 - e))``
  against the predicted uplift: unbiased for the uplift's squared error when ``contacted``
  is randomised with probability ``e``), Qini, AUUC and the uplift in the top 30%
  (``sklift``);
* the truth on the test rows: the uplift rank correlation with the true uplift, and the
  mean true uplift of the 30% of rows the model ranks highest;

then, across the sets, each measure's rank correlation with the test truth (a measure a
tuning can use should correlate well; the truth's own correlation on the validation rows,
which no user has, shows what the parameters are worth).

Usage::

    .venv/bin/python benchmarks/tuning_objectives.py --demo-seed 0 --sets 16   # demo world in a temp folder
    .venv/bin/python benchmarks/tuning_objectives.py --workspace PATH           # a workspace with a generated world
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import log_loss

from nextbest import logfile
from nextbest.models.metrics import uplift_metrics
from nextbest.models.response import ResponseModel
from nextbest.simulation.demo import DemoOptions, given_or_demo
from nextbest.training.dataset import TrainingSet, time_split
from nextbest.training.trainer import base_params, fit_model, load_training_set, make_model
from nextbest.training.tuning import search_space, starting_point

PARAMETERS = ("learning_rate", "num_leaves", "min_child_samples", "feature_fraction", "bagging_fraction", "lambda_l2")
#: Observable validation measures, and whether a tuning would minimise them.
OBSERVABLE = {"logloss": True, "tau_risk": True, "qini": False, "auuc": False, "uplift_at_30": False}


def measures(model: ResponseModel, part: TrainingSet) -> dict[str, float]:
    """Observable measures and the truth's, of ``model`` on the rows of ``part``."""
    frame, y = part.frame, part.y
    uplift = model.score(frame)["uplift"].to_numpy()
    p = model.predict_observed(part.X, calibrated=True)
    t = frame["contacted"].to_numpy().astype(int)
    e = t.mean()
    transformed = y * (t - e) / (e * (1 - e))
    true_uplift = (frame["true_p_contact"] - frame["true_p_control"]).to_numpy(float)
    top = np.argsort(-uplift, kind="stable")[: int(0.3 * len(frame))]
    ranks = uplift_metrics(y, uplift, t)
    return {
        "logloss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "tau_risk": float(np.mean((transformed - uplift) ** 2)),
        "qini": ranks["qini"], "auuc": ranks["auuc"], "uplift_at_30": ranks["uplift_at_30"],
        "true_uplift_correlation": float(spearmanr(uplift, true_uplift).statistic),
        "true_uplift_top_30": float(true_uplift[top].mean()),
    }


def agreement(rows: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per validation measure, its rank correlation across the sets with the test truth (sign: better with better)."""
    out = {}
    for name in [*OBSERVABLE, "true_uplift_correlation"]:
        column = rows[f"valid_{name}"] * (-1 if OBSERVABLE.get(name, False) else 1)
        out[name] = {truth: round(float(column.corr(rows[f"test_{truth}"], method="spearman")), 2)
                     for truth in ("true_uplift_correlation", "true_uplift_top_30")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="Workspace with a generated world (default: build the demo world).")
    parser.add_argument("--demo-seed", type=int, default=0, help="Seed of the demo world built when --workspace is absent.")
    parser.add_argument("--sets", type=int, default=16, help="Parameter sets: the configuration, then random draws.")
    args = parser.parse_args()
    if args.sets < 2:
        parser.error("--sets must be at least 2: measures are compared across sets")
    with given_or_demo(args.workspace, DemoOptions(seed=args.demo_seed), model=False) as ws:
        config = ws.config()
        data, _ = load_training_set(ws, config)
        if not data.has_truth:
            raise SystemExit(f"{ws.root}: no ground truth; run `nextbest data generate` first")
        training = config.training
        split = time_split(data.frame["ts"], training.validation_share, training.test_share)
        valid, test = data.subset(split.validation), data.subset(split.test)
        base = base_params(training)
        draws = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.demo_seed))
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        rows = []
        for i in range(args.sets):
            params = {**base, **(starting_point(base) if i == 0 else search_space(draws.ask()))}
            model = make_model(config, data.categorical, data.defaults, strategy=training.strategy,
                               learner=training.uplift_learner, params=params)
            model = fit_model(data, split, model)
            row = {"set": i} | {k: params[k] for k in PARAMETERS if k in params}
            row |= {f"valid_{k}": v for k, v in measures(model, valid).items()}
            row |= {f"test_{k}": v for k, v in measures(model, test).items()}
            rows.append(row)
            print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        frame = pd.DataFrame(rows)
        print(json.dumps({
            "workspace": str(ws.root), "learner": training.uplift_learner, "sets": args.sets,
            "validation_rows": len(valid.frame), "validation_conversions": int(valid.y.sum()),
            "test_true_uplift_correlation_range": [round(float(frame["test_true_uplift_correlation"].min()), 3),
                                                   round(float(frame["test_true_uplift_correlation"].max()), 3)],
            "agreement_with_test_truth": agreement(frame),
        }))


if __name__ == "__main__":
    logfile.route_script_output(__file__)
    main()
