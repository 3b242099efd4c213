"""``nextbest train``: build the training set, fit, evaluate, log to MLflow, register.

One call trains one :class:`~nextbest.models.response.ResponseModel` (response
+ uplift + value) as one MLflow run of the ``nextbest-response`` experiment:

1. point-in-time training set from the exposure log (:mod:`.dataset`), split by time;
2. optional Optuna tuning of the LightGBM parameters (:mod:`.tuning`, nested runs);
3. fit on the train part, early stopping and calibration on the validation part;
4. metrics on the test part (AUC, log loss, Brier, calibration error overall and
   per offer × channel, Qini/AUUC, top-decile lift; oracle AUC and uplift rank
   correlation when the synthetic world's truth is there), figures, lineage;
5. the bundle logged as an ``mlflow.pyfunc`` model with a signature, registered
   as ``nextbest-response`` with alias ``challenger`` (and ``champion`` if there
   is none yet).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import mlflow
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from nextbest.config import NextbestConfig, TrainingConfig
from nextbest.features.contacts import constrained_pressure
from nextbest.errors import BadInputError, NotFoundError
from nextbest.models import figures
from nextbest.models.bagged_learner import BaggedLearner
from nextbest.models.context import OfferContext
from nextbest.models.grouped import PerGroupClassifier
from nextbest.models.lgbm import LGBMResponseClassifier, LGBMValueRegressor
from nextbest.models.metrics import (
    calibration_by_action,
    classification_metrics,
    oracle_metrics,
    uplift_metrics,
)
from nextbest.models.pyfunc import SCORER_ARTIFACT, ResponseModelPyfunc, input_example_for, signature_for
from nextbest.models.registry import CHALLENGER, CHAMPION, MODEL_NAME, RegisteredVersion, get_version, set_alias
from nextbest.models.response import ResponseModel, assert_no_personal_columns
from nextbest.models.s_learner import SLearner
from nextbest.models.shift_learner import ShiftLearner
from nextbest.models.uplift import LEARNERS
from nextbest.models.value import ResponseValueModel
from nextbest.training import tracking
from nextbest.training.dataset import TREATMENT_FEATURES, TimeSplit, TrainingSet, time_split
from nextbest.warehouse.attributes import check_names
from nextbest.workspace import Workspace

Strategy = Literal["global", "per_offer_channel"]
Learner = Literal["s", "t", "x", "shift"]


@dataclass(frozen=True)
class TrainOptions:
    """What to train; ``None`` fields take the configuration's value.

    Attributes
    ----------
    strategy
        ``global`` (one model, offer and channel categorical) or ``per_offer_channel``.
    learner
        Uplift meta-learner: ``s``, ``t`` or ``x``.
    tune_trials
        Optuna trials before the final fit (0 = use the configured parameters).
    register
        Register the model (alias ``challenger``; ``champion`` too if there is none).
    run_name
        MLflow run name.
    """

    strategy: Strategy | None = None
    learner: Learner | None = None
    tune_trials: int = 0
    register: bool = True
    run_name: str | None = None


@dataclass(frozen=True)
class TrainResult:
    """Outcome of one training run."""

    run_id: str
    metrics: dict[str, float]
    version: RegisteredVersion | None = None
    champion: bool = False
    params: dict[str, Any] = field(default_factory=dict)


#: DuckDB memory cap while the training set is built (``NEXTBEST_DUCKDB_MEMORY`` overrides it).
TRAINING_SET_MEMORY = "2GB"


def base_params(training: TrainingConfig) -> dict[str, Any]:
    """LightGBM parameters from the configuration."""
    return {
        "n_estimators": training.n_estimators,
        "learning_rate": training.learning_rate,
        "num_leaves": training.num_leaves,
        "min_child_samples": training.min_child_samples,
        "feature_fraction": training.feature_fraction,
        "lambda_l2": training.lambda_l2,
        "early_stopping_rounds": training.early_stopping_rounds,
        "ignored_features": training.ignored_features,
        "random_state": training.seed,
        "n_jobs": training.n_jobs,
    }


def make_model(
    config: NextbestConfig,
    categorical: tuple[str, ...],
    defaults: dict[str, float],
    *,
    strategy: Strategy,
    learner: Learner,
    params: dict[str, Any],
) -> ResponseModel:
    """The unfitted bundle for a strategy and learner."""
    base = LGBMResponseClassifier(categorical=categorical, defaults=defaults or None, **params)
    # Contact pressure acts through a contact: each learner reads it only in the part that carries the
    # contact effect, constrained there, so the uplift cannot rise with pressure (docs/training.md):
    #   s      one model, pressure missing on control rows; constrained in pressure.
    #   t      treated-arm model constrained; the control-arm model never reads pressure.
    #   x      the same two outcome models; both imputed-effect regressions constrained.
    #   shift  the baseline never reads pressure; the contact-effect model constrained.
    down = constrained_pressure(config)
    pressure = tuple(down)
    hidden = tuple(dict.fromkeys([*TREATMENT_FEATURES, *pressure]))

    def wrap(model: BaseEstimator) -> BaseEstimator:
        return PerGroupClassifier(model) if strategy == "per_offer_channel" else model

    constrained = clone(base).set_params(monotone=down) if down else base
    estimator = wrap(base)
    prior = {o.id: o.value for o in config.offers.offers}
    uplift: BaseEstimator
    # The channel only acts through a contact: the S- and shift learners hide it on rows without one.
    if learner == "s":
        uplift = SLearner(wrap(constrained), treatment_features=hidden)
    elif learner in ("t", "x"):
        kw: dict[str, Any] = {"control_ignores": pressure}
        if learner == "x":
            # The outcome models' categories and defaults: one encoding serves all four models.
            kw["effect_estimator"] = LGBMValueRegressor(
                n_estimators=200, learning_rate=0.05, num_leaves=15, min_child_samples=100,
                random_state=config.training.seed, n_jobs=config.training.n_jobs, monotone=down or None,
                categorical=categorical, defaults=defaults or None,
            )
        uplift = LEARNERS[learner](wrap(constrained), control_estimator=estimator, **kw)
    elif learner == "shift":
        if strategy != "global":
            raise BadInputError("the shift learner needs strategy global (its two models share one encoding)")
        effect = clone(base).set_params(
            num_leaves=config.training.effect_num_leaves,
            min_child_samples=config.training.effect_min_child_samples,
            ignored_features=tuple(dict.fromkeys([*config.training.ignored_features,
                                                  *config.training.effect_ignored_features])),
            monotone=down or None,
        )
        uplift = ShiftLearner(base, effect, treatment_features=hidden)
    else:
        uplift = LEARNERS[learner](estimator)
    if config.training.ensemble_members > 1:
        uplift = BaggedLearner(uplift, n_members=config.training.ensemble_members)
    return ResponseModel(
        uplift,
        calibration=config.training.calibration,
        value_model=ResponseValueModel(prior=prior),
        context=OfferContext.from_config(config),
    )


def evaluate(model: ResponseModel, test: TrainingSet) -> tuple[dict[str, float], dict[str, Any]]:
    """Test-set metrics and the arrays the figures need."""
    X, y, frame = test.X, test.y, test.frame
    raw = model.predict_observed(X, calibrated=False)
    p = model.calibrator_.transform(raw)
    scores = model.score(frame)
    metrics = classification_metrics(y, p, prefix="test_")
    metrics |= {k.replace("test_", "test_uncalibrated_"): v for k, v in classification_metrics(y, raw, "test_").items()
                if k in ("test_logloss", "test_brier", "test_ece")}
    metrics |= uplift_metrics(y, scores["uplift"].to_numpy(), frame["contacted"].to_numpy(), prefix="test_")
    by_action = calibration_by_action(frame, p)
    if len(by_action):
        metrics["test_ece_by_action_max"] = float(by_action["ece"].max())
        metrics["test_ece_by_action_mean"] = float(by_action["ece"].mean())
        for row in by_action.itertuples():
            metrics[f"test_ece.{row.offer_id}.{row.channel}"] = float(row.ece)
    converted = y == 1
    if converted.any():
        err = scores["value"].to_numpy()[converted] - frame["revenue"].to_numpy()[converted]
        metrics["test_value_mae"] = float(np.abs(err).mean())
        metrics["test_value_bias"] = float(err.mean())
    # Only generated history has ground truth; decisions logged later (a simulated
    # closed loop, a live service) have none, so the oracle is compared on the rows that do.
    known = frame["true_p_contact"].notna().to_numpy() if test.has_truth else np.zeros(len(frame), dtype=bool)
    if known.any():
        metrics |= oracle_metrics(
            y[known], frame["contacted"].to_numpy()[known], frame["true_p_contact"].to_numpy()[known],
            frame["true_p_control"].to_numpy()[known], scores["uplift"].to_numpy()[known],
        )
        same_rows_auc = metrics["test_auc"] if known.all() else classification_metrics(y[known], p[known], "")["auc"]
        metrics["oracle_rows"] = int(known.sum())
        metrics["auc_gap_to_oracle"] = metrics["oracle_auc"] - same_rows_auc
    arrays = {"y": y, "p": p, "raw": raw, "uplift": scores["uplift"].to_numpy(), "treatment": frame["contacted"].to_numpy(),
              "by_action": by_action}
    return metrics, arrays


def fit_model(
    data: TrainingSet,
    split: TimeSplit,
    model: ResponseModel,
) -> ResponseModel:
    """Fit on the train part; early stopping and calibration on the validation part."""
    train, valid = data.subset(split.train), data.subset(split.validation)
    return model.fit(
        train.X, train.y, revenue=train.frame["revenue"],
        X_calibration=valid.X, y_calibration=valid.y,
        eval_set=(valid.X, valid.y),
    )


def run_training(
    ws: Workspace,
    config: NextbestConfig,
    data: TrainingSet,
    options: TrainOptions = TrainOptions(),
    *,
    feature_set_version: str = "unknown",
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train, evaluate, log and (optionally) register one model on a prepared training set."""
    say = progress or (lambda _msg: None)
    training = config.training
    strategy: Strategy = options.strategy or training.strategy
    learner: Learner = options.learner or training.uplift_learner
    assert_no_personal_columns(data.feature_columns)
    # Declared personal attributes are never registered as features; refuse them anyway, before MLflow.
    check_names(data.feature_columns, config, what="model inputs")
    split = time_split(data.frame["ts"], training.validation_share, training.test_share)
    test = data.subset(split.test)
    defaults = data.defaults
    params = base_params(training)

    uri = tracking.use_workspace(ws)
    experiment_id = tracking.ensure_experiment(ws)
    run_name = options.run_name or f"{strategy}-{learner}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags({"model_family": MODEL_NAME, "strategy": strategy, "uplift_learner": learner})
        if options.tune_trials > 0:
            from nextbest.training.tuning import tune

            say(f"tuning: {options.tune_trials} Optuna trials")
            params = tune(data, split, params, data.categorical, defaults, n_trials=options.tune_trials,
                          seed=training.seed, progress=say)
        tracking.log_params(
            {
                **{f"lgbm_{k}": v for k, v in params.items()},
                "strategy": strategy,
                "uplift_learner": learner,
                "calibration": training.calibration,
                "label": training.label,
                "response_window_days": training.response_window_days,
                "feature_set_version": feature_set_version,
                "n_features": len(data.feature_columns),
                "train_rows": int(split.train.sum()),
                "validation_rows": int(split.validation.sum()),
                "test_rows": int(split.test.sum()),
                "validation_from": str(split.validation_from),
                "test_from": str(split.test_from),
                **{k: v for k, v in data.lineage.items() if k != "snapshot_dates"},
            }
        )
        mlflow.log_dict(data.lineage | {"feature_set_version": feature_set_version,
                                        "feature_columns": list(data.feature_columns)}, "lineage.json")

        say(f"fitting {strategy} {learner.upper()}-learner on {int(split.train.sum()):,} decisions")
        model = make_model(config, data.categorical, defaults, strategy=strategy, learner=learner, params=params)
        model = fit_model(data, split, model)

        say("evaluating on the test period")
        metrics, arrays = evaluate(model, test)
        tracking.log_metrics(metrics)
        tracking.log_figure(
            figures.calibration_figure(arrays["y"], {"calibrated": arrays["p"], "uncalibrated": arrays["raw"]}),
            "calibration_curve",
        )
        tracking.log_figure(figures.qini_figure(arrays["y"], arrays["uplift"], arrays["treatment"]), "qini_curve")
        importance = model.feature_importance()
        tracking.log_figure(figures.importance_figure(importance), "feature_importance")
        tracking.log_frame(importance.rename_axis("feature").reset_index(), "feature_importance")
        if len(arrays["by_action"]):
            tracking.log_frame(arrays["by_action"], "calibration_by_offer_channel")

        version, champion = None, False
        with tempfile.TemporaryDirectory() as tmp:
            folder = model.save(Path(tmp) / SCORER_ARTIFACT)
            example = test.frame[list(data.feature_columns)]
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=ResponseModelPyfunc(),
                artifacts={SCORER_ARTIFACT: str(folder)},
                signature=signature_for(example, data.categorical),
                input_example=input_example_for(example, data.categorical),
                pip_requirements=_requirements(),
            )
        if options.register:
            say("registering")
            mv = mlflow.register_model(info.model_uri, MODEL_NAME)
            set_alias(uri, CHALLENGER, str(mv.version))
            if get_version(uri, CHAMPION) is None:
                set_alias(uri, CHAMPION, str(mv.version))
                champion = True
            version = get_version(uri, CHALLENGER)
            mlflow.set_tag("registered_version", str(mv.version))
    return TrainResult(run.info.run_id, metrics, version, champion, params)


def _requirements() -> list[str]:
    """Pinned requirements of the pyfunc model (no slow inference from the environment)."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("lightgbm", "numpy", "pandas", "scikit-learn", "mlflow")] + [
        "nextbest"
    ]


def check_options(options: TrainOptions) -> TrainOptions:
    if options.strategy not in (None, "global", "per_offer_channel"):
        raise BadInputError(f"--strategy {options.strategy!r}: use global or per_offer_channel")
    if options.learner not in (None, *LEARNERS):
        raise BadInputError(f"--learner {options.learner!r}: use one of {', '.join(LEARNERS)}")
    if options.tune_trials < 0:
        raise BadInputError("--tune must be 0 or a positive number of trials")
    return options


def load_training_set(
    ws: Workspace, config: NextbestConfig, progress: Callable[[str], None] | None = None
) -> tuple[TrainingSet, str]:
    """The workspace's training set (building missing snapshots first) and its feature set version.

    The warehouse connection is opened for this step only: DuckDB allows one
    writer per file, and fitting takes minutes.
    """
    from nextbest.features.registry import categorical_features, feature_defs, model_features, offer_history_features
    from nextbest.training.dataset import build_training_set, decision_dates, observed_until
    from nextbest.training.snapshots import build_missing, feature_set_versions, missing_dates
    from nextbest.warehouse.db import connect

    history = {d.name: d.default for d in offer_history_features(feature_defs(config))}
    # The as-of join holds the snapshot table's columns; uncapped, DuckDB took 6.4 GB for a
    # 0.6 GB training set (100k customers), and 13 GB at 200k. Capped, it spills instead.
    con = connect(ws.warehouse_path, memory_limit=TRAINING_SET_MEMORY)
    try:
        until = observed_until(con)
        if until is None:
            raise NotFoundError("the warehouse has no decisions; run `nextbest data generate` or import some")
        horizon = pd.Timestamp(until) - pd.Timedelta(days=config.training.response_window_days)
        build_missing(ws, con, config, missing_dates(con, decision_dates(con, horizon)), progress)
        data = build_training_set(
            con, config,
            features=model_features(config),
            categorical=categorical_features(config),
            offer_history=history,
            experiments=config.training.experiments,
        )
        versions = feature_set_versions(con, data.lineage["snapshot_dates"])
    finally:
        con.close()
    return data, ",".join(versions) or "unknown"


def train(ws: Workspace, options: TrainOptions = TrainOptions(), progress: Callable[[str], None] | None = None) -> TrainResult:
    """``nextbest train``: training set from the workspace, then :func:`run_training`."""
    check_options(options)
    config = ws.config()
    data, version = load_training_set(ws, config, progress)
    return run_training(ws, config, data, options, feature_set_version=version, progress=progress)
