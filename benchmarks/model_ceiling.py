"""How much of the gap to the oracle is learnable from the features? Ceilings on the synthetic world.

The oracle knows the world's latent state (segments, exact tastes, fatigue, noise);
a model sees feature snapshots. Three numbers separate "the learner could do
better" from "the features do not carry it", on a workspace with a generated world:

1. **Feature ceiling** - LightGBM regressors fitted on the training rows to the
   *true* log-odds (baseline and contact effect), scored on the test rows: the
   test AUC and uplift rank correlation of a model that had perfect labels.
2. **Label-rich learner** - the configured learner trained on ``--draws`` label
   draws per decision from the true probabilities (the same rows and features,
   the label noise averaged away).
3. With ``--closed-loop``, a 30-day simulation (demo world only, paired) of the champion
   ``nextbest train`` makes from the real labels (the configured learner, or ``--learner``)
   against the feature-ceiling regressors deciding as the ``challenger`` policy
   (:class:`FeatureCeilingScorer`: what a perfect learner on these features would earn),
   the rules policy and the oracle. It prints both shares of the oracle's incremental
   profit and the champion's share of the ceiling's (issue target: at least 90%).

Usage::

    .venv/bin/python benchmarks/model_ceiling.py --workspace PATH        # a workspace with `data generate` run
    .venv/bin/python benchmarks/model_ceiling.py --demo-seed 0 --closed-loop [--learner shift]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from nextbest import logfile
from nextbest.config import NextbestConfig
from nextbest.models.context import OfferContext
from nextbest.models.uplift import LEARNERS
from nextbest.simulation.demo import DemoOptions, given_or_demo, prepare
from nextbest.workspace import Workspace
from nextbest.training.dataset import TrainingSet, time_split
from nextbest.training.trainer import TrainOptions, load_training_set, run_training

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simulation import override  # noqa: E402


#: Regressors of the true log-odds: flexible, since their targets carry no label noise.
REGRESSOR = {"n_estimators": 400, "learning_rate": 0.05, "num_leaves": 31, "verbose": -1, "n_jobs": 1}


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1.0 - p))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def true_logits(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per decision, the true baseline log-odds and the true contact effect in log-odds."""
    b = _logit(frame["true_p_control"].to_numpy(float))
    return b, _logit(frame["true_p_contact"].to_numpy(float)) - b


def feature_ceiling(data: TrainingSet, config: NextbestConfig) -> dict[str, float]:
    """Test AUC and uplift Spearman of regressors fitted to the true log-odds.

    They see what the response model sees: the features plus its customer × offer
    context columns (:class:`~nextbest.models.context.OfferContext`, fitted on the
    training rows).
    """
    frame = data.frame
    split = time_split(frame["ts"], config.training.validation_share, config.training.test_share)
    train, test = np.asarray(split.train), np.asarray(split.test)
    features = frame[list(data.feature_columns)]
    X = OfferContext.from_config(config).fit(features[train]).transform(features)
    for c in data.categorical:
        X[c] = X[c].astype("category")
    b, tau = true_logits(frame)
    b_hat = lgb.LGBMRegressor(**REGRESSOR).fit(X[train], b[train]).predict(X[test])
    tau_hat = lgb.LGBMRegressor(**REGRESSOR).fit(X[train], tau[train]).predict(X[test])
    contacted = frame["contacted"].to_numpy(bool)[test]
    y = frame["label"].to_numpy(int)[test]
    true_uplift = (frame["true_p_contact"] - frame["true_p_control"]).to_numpy(float)[test]
    truth = np.where(contacted, frame["true_p_contact"].to_numpy(float)[test], frame["true_p_control"].to_numpy(float)[test])
    return {
        "oracle_auc": round(float(roc_auc_score(y, truth)), 4),
        "ceiling_auc": round(float(roc_auc_score(y, b_hat + contacted * tau_hat)), 4),
        "ceiling_uplift_spearman": round(float(spearmanr(_sigmoid(b_hat + tau_hat) - _sigmoid(b_hat), true_uplift).statistic), 3),
        "ceiling_tau_r2": round(float(1 - ((tau_hat - tau[test]) ** 2).mean() / tau[test].var()), 3),
    }


class FeatureCeilingScorer:
    """A :class:`~nextbest.models.scoring.Scorer` from regressors of the true log-odds on the features.

    Fitted on the training rows' features (plus the model's customer × offer context
    columns) to ``logit(true_p_control)`` and the true contact effect in log-odds. It
    knows no latent state, only what a perfectly fitted model of these features could.
    """

    model_version = "feature-ceiling"

    def __init__(self, data: TrainingSet, config: NextbestConfig) -> None:
        frame = data.frame
        self.feature_columns = list(data.feature_columns)
        self.defaults = dict(data.defaults or {})
        self.context = OfferContext.from_config(config).fit(frame[self.feature_columns])
        self.levels = {c: sorted(frame[c].dropna().astype(str).unique()) for c in data.categorical}
        X = self._encode(frame)
        self.columns = list(X.columns)
        b, tau = true_logits(frame)
        self.baseline = lgb.LGBMRegressor(**REGRESSOR).fit(X, b)
        self.effect = lgb.LGBMRegressor(**REGRESSOR).fit(X, tau)

    def _encode(self, candidates: pd.DataFrame) -> pd.DataFrame:
        missing = {c: v for c, v in self.defaults.items() if c not in candidates.columns}
        X = self.context.transform(candidates.assign(**missing)[self.feature_columns])
        out = {}
        for c in X.columns:
            if c in self.levels:
                text = X[c].astype("string").astype(object).where(X[c].notna(), None)
                out[c] = pd.Categorical(text, categories=self.levels[c])
            else:
                out[c] = pd.to_numeric(X[c], errors="coerce")
        return pd.DataFrame(out, index=candidates.index)

    def score(self, candidates: pd.DataFrame) -> pd.DataFrame:
        X = self._encode(candidates)[self.columns]
        b, tau = self.baseline.predict(X), self.effect.predict(X)
        p0, p1 = _sigmoid(b), _sigmoid(b + tau)
        return pd.DataFrame({"p_contact": p1, "p_control": p0, "uplift": p1 - p0, "value": np.zeros(len(X))},
                            index=candidates.index)

    def reasons(self, candidates: pd.DataFrame, top: int = 3) -> list[list[str]]:
        return [["feature-ceiling"] for _ in range(len(candidates))]


def label_rich(data: TrainingSet, draws: int, seed: int) -> TrainingSet:
    """``draws`` copies of every decision, each with a label drawn from its true probability."""
    frame = data.frame
    rng = np.random.default_rng(seed)
    p = np.where(frame["contacted"].astype(bool), frame["true_p_contact"], frame["true_p_control"]).astype(float)
    big = frame.loc[frame.index.repeat(draws)].reset_index(drop=True)
    big["label"] = (rng.random(len(big)) < np.repeat(p, draws)).astype(np.int8)
    # Revenue of a conversion: the decision's own when it converted, else the average conversion's.
    paid = frame["revenue"].where(frame["label"] == 1)
    per_row = paid.fillna(paid.mean() if paid.notna().any() else 0.0).to_numpy(float)
    big["revenue"] = np.where(big["label"] == 1, np.repeat(per_row, draws), 0.0)
    return replace(data, frame=big)


@contextmanager
def demo_with_champion(seed: int, tune: int, learner: str | None) -> Iterator[Workspace]:
    """A demo world with its champion trained as ``benchmarks/simulation.py`` trains it, for the block."""
    with tempfile.TemporaryDirectory(prefix="nextbest-ceiling-") as tmp:
        ws = Workspace(Path(tmp) / "demo").ensure()
        ws.init_config()
        if learner is not None:
            override(ws.config_dir, "uplift_learner", learner)
        prepare(ws, DemoOptions(seed=seed, tune_trials=tune), lambda _m: None)
        yield ws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, help="Workspace with a generated world (default: build the demo world).")
    parser.add_argument("--demo-seed", type=int, default=0, help="Seed of the demo world built when --workspace is absent.")
    parser.add_argument("--draws", type=int, default=20, help="Label draws per decision for the label-rich learner.")
    parser.add_argument("--closed-loop", action="store_true",
                        help="Also simulate the champion and the feature ceiling for 30 days (demo world).")
    parser.add_argument("--learner", choices=sorted(LEARNERS), help="Uplift learner of the champion (default: the configuration's).")
    parser.add_argument("--tune", type=int, default=0, help="Optuna trials for the champion (the demo uses 5).")
    parser.add_argument("--jobs", type=int, default=1, help="Policies simulated side by side in the closed loop.")
    args = parser.parse_args()
    if args.closed_loop and args.workspace is not None:
        parser.error("--closed-loop builds its own demo world; leave out --workspace")

    world = (demo_with_champion(args.demo_seed, args.tune, args.learner) if args.closed_loop
             else given_or_demo(args.workspace, DemoOptions(seed=args.demo_seed), model=False))
    with world as ws:
        config = ws.config()
        data, version = load_training_set(ws, config)
        if not data.has_truth:
            raise SystemExit(f"{ws.root}: no ground truth; run `nextbest data generate` first")
        out: dict[str, object] = {"workspace": str(ws.root), "decisions": len(data.frame)}
        out |= feature_ceiling(data, config)
        rich = run_training(
            ws, config, label_rich(data, args.draws, seed=0),
            TrainOptions(run_name=f"ceiling-{args.draws}-draws", register=False), feature_set_version=version,
        )
        out |= {f"label_rich_{k}": round(rich.metrics[k], 4) for k in ("test_auc", "uplift_spearman")}
        if args.closed_loop:
            from nextbest.simulation.runner import SimulationOptions, simulate

            policies = ("champion", "challenger", "rules", "oracle")
            run = simulate(ws, SimulationOptions(days=30, policies=policies, seed=args.demo_seed, run_name="ceiling",
                                                   jobs=args.jobs),
                           scorers={"challenger": FeatureCeilingScorer(data, config)})
            r = {x.policy: x for x in run.results}
            oracle, ceiling = r["oracle"].incremental_profit, r["challenger"].incremental_profit
            expected_ceiling = r["challenger"].expected_incremental_profit
            out["closed_loop"] = {
                "learner": config.training.uplift_learner,
                "incremental_profit": {p: round(x.incremental_profit) for p, x in r.items()},
                "expected_incremental_profit": {p: round(x.expected_incremental_profit) for p, x in r.items()},
                "champion_share_of_oracle": round(r["champion"].incremental_profit / oracle, 3),
                "feature_ceiling_share_of_oracle": round(ceiling / oracle, 3),
                "champion_share_of_feature_ceiling": round(r["champion"].incremental_profit / ceiling, 3) if ceiling > 0 else None,
                # The truth's expectation for the decisions made: the same ratio without the draws' luck.
                "expected_champion_share_of_feature_ceiling": (
                    round(r["champion"].expected_incremental_profit / expected_ceiling, 3) if expected_ceiling > 0 else None),
                "violations": {p: x.total_violations for p, x in r.items()},
            }
        print(json.dumps(out))


if __name__ == "__main__":
    logfile.route_script_output(__file__)
    main()
