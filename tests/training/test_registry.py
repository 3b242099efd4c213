"""Training runs against a real MLflow sqlite store: registry, loading, promotion, tuning."""

from __future__ import annotations

from dataclasses import replace

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from nextbest.training.tracking import use_workspace
from nextbest.config import PromotionGate
from nextbest.errors import BadInputError, NotFoundError
from nextbest.models.registry import MODEL_NAME, get_version, load_scorer
from nextbest.models.scoring import SCORE_COLUMNS, Scorer
from nextbest.models.uplift_base import matrix_encoders_of
from nextbest.training.dataset import TrainingSet, time_split
from nextbest.training.promotion import decide, promote
from nextbest.training.trainer import TrainOptions, run_training
from nextbest.warehouse.schema import PERSONAL_COLUMNS
from nextbest.workspace import Workspace

SMALL = {"n_estimators": 80}


def _config(ws: Workspace, **training: object):  # type: ignore[no-untyped-def]
    config = ws.config()
    return config.model_copy(update={"training": config.training.model_copy(update={**SMALL, **training})})


def test_load_scorer_without_a_model_says_what_to_do(mlflow_workspace: Workspace) -> None:
    with pytest.raises(NotFoundError, match="no champion model registered — run `nextbest train`"):
        load_scorer(mlflow_workspace.tracking_uri)


def test_train_registers_champion_and_round_trips(synthetic_workspace: Workspace, training_set: TrainingSet) -> None:
    ws = synthetic_workspace
    result = run_training(ws, _config(ws), training_set)
    assert result.champion and result.version is not None
    assert set(result.version.aliases) == {"champion", "challenger"}
    for name in ("test_auc", "oracle_auc", "uplift_spearman", "test_logloss", "test_brier", "test_qini"):
        assert np.isfinite(result.metrics[name]), name
    assert result.metrics["oracle_auc"] - result.metrics["test_auc"] < 0.05
    assert result.metrics["uplift_spearman"] > 0.5

    run = MlflowClient(ws.tracking_uri).get_run(result.version.run_id)
    assert run.data.metrics["test_auc"] == pytest.approx(result.metrics["test_auc"])
    assert {"feature_set_version", "test_from", "train_rows", "decisions_from"} <= set(run.data.params)
    artifacts = {a.path for a in MlflowClient(ws.tracking_uri).list_artifacts(run.info.run_id, "figures")}
    assert {"figures/calibration_curve.png", "figures/qini_curve.png", "figures/feature_importance.png"} <= artifacts

    # Native loader and the MLflow pyfunc flavour give identical scores.
    scorer = load_scorer(ws.tracking_uri)
    assert isinstance(scorer, Scorer)
    assert scorer.model_version == f"{MODEL_NAME}/1"
    candidates = training_set.frame.iloc[:500]
    native = scorer.score(candidates)
    assert list(native.columns) == list(SCORE_COLUMNS)
    use_workspace(ws)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    np.testing.assert_array_equal(pyfunc.predict(candidates[list(training_set.feature_columns)]).to_numpy(), native.to_numpy())
    np.testing.assert_allclose(native["uplift"], native["p_contact"] - native["p_control"])
    reasons = scorer.reasons(candidates.iloc[:3], top=2)
    assert len(reasons) == 3 and all(len(r) <= 2 and all(":" in x for x in r) for r in reasons)


def test_oracle_metrics_use_only_decisions_with_ground_truth(
    synthetic_workspace: Workspace, training_set: TrainingSet
) -> None:
    # A closed loop logs decisions after the generated history: they have outcomes but no truth.
    ws = synthetic_workspace
    frame = training_set.frame.copy()
    late = frame["ts"] >= frame["ts"].quantile(0.9)
    frame.loc[late, ["true_p_contact", "true_p_control"]] = np.nan
    result = run_training(ws, _config(ws), replace(training_set, frame=frame), TrainOptions(register=False))
    metrics = result.metrics
    config = _config(ws).training
    test = np.asarray(time_split(frame["ts"], config.validation_share, config.test_share).test)
    with_truth = frame["true_p_contact"].notna().to_numpy()[test]
    assert 0 < with_truth.sum() < len(with_truth)
    assert metrics["oracle_rows"] == with_truth.sum()
    for name in ("test_auc", "oracle_auc", "uplift_spearman", "auc_gap_to_oracle"):
        assert np.isfinite(metrics[name]), name


def test_training_refuses_personal_columns(synthetic_workspace: Workspace, training_set: TrainingSet) -> None:
    leaky = replace(training_set, feature_columns=(*training_set.feature_columns, "email"),
                    frame=training_set.frame.assign(email="someone@example.org"))
    with pytest.raises(BadInputError, match=r"personal column\(s\) \['email'\]"):
        run_training(synthetic_workspace, _config(synthetic_workspace), leaky)


def test_artifact_features_are_model_features_only(synthetic_workspace: Workspace, training_set: TrainingSet) -> None:
    ws = synthetic_workspace
    run_training(ws, _config(ws), training_set)
    scorer = load_scorer(ws.tracking_uri)
    # Every model the learner reads (the shift learner's baseline and effect models alike).
    encoders = matrix_encoders_of(scorer.learner_)
    assert encoders
    for encoder in encoders:
        inputs = set(encoder.feature_names_in_)
        assert not inputs & PERSONAL_COLUMNS
        assert inputs >= set(training_set.feature_columns)


def test_promotion_refuses_a_worse_challenger(synthetic_workspace: Workspace, training_set: TrainingSet) -> None:
    ws = synthetic_workspace
    run_training(ws, _config(ws), training_set)
    # A challenger that sees only the offer and channel cannot rank customers.
    weak = replace(training_set, feature_columns=("offer_id", "channel"), categorical=("offer_id", "channel"))
    run_training(ws, _config(ws), weak)
    decision = promote(ws, data=training_set)
    assert not decision.promoted
    assert "champion kept" in decision.reason
    assert decision.challenger_value < decision.champion_value
    assert get_version(ws.tracking_uri, "champion").version == "1"
    assert get_version(ws.tracking_uri, "challenger").version == "2"


def test_promotion_accepts_a_better_challenger(synthetic_workspace: Workspace, training_set: TrainingSet) -> None:
    ws = synthetic_workspace
    weak = replace(training_set, feature_columns=("offer_id", "channel"), categorical=("offer_id", "channel"))
    run_training(ws, _config(ws), weak)
    run_training(ws, _config(ws), training_set)
    decision = promote(ws, data=training_set)
    assert decision.promoted, decision.reason
    assert get_version(ws.tracking_uri, "champion").version == "2"


@pytest.mark.parametrize(
    ("metric", "champion", "challenger", "promoted", "fragment"),
    [
        ("test_auc", 0.70, 0.71, True, "better by 0.0100"),
        ("test_auc", 0.70, 0.701, False, "below the required 0.002"),
        ("test_auc", 0.70, 0.65, False, "improvement -0.0500"),
        ("test_logloss", 0.20, 0.19, True, "lower is better"),
        ("test_logloss", 0.20, 0.21, False, "champion kept"),
        ("test_qini", float("nan"), 0.1, False, "not computable"),
    ],
)
def test_promotion_gate(metric: str, champion: float, challenger: float, promoted: bool, fragment: str) -> None:
    ok, reason = decide(PromotionGate(metric=metric, min_improvement=0.002), champion, challenger)  # type: ignore[arg-type]
    assert ok is promoted
    assert fragment in reason


def test_tuning_logs_nested_trials(synthetic_workspace: Workspace, training_set: TrainingSet) -> None:
    ws = synthetic_workspace
    said: list[str] = []
    result = run_training(ws, _config(ws), training_set, TrainOptions(tune_trials=2, register=False),
                          progress=said.append)
    trials = [line for line in said if line.startswith("trial ")]
    assert [t.split(":")[0] for t in trials] == ["trial 1/2", "trial 2/2"]
    assert "validation log loss" in trials[0]  # trial 0, the configuration, is never pruned
    client = MlflowClient(ws.tracking_uri)
    parent = client.get_run(result.run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert len(children) == 2
    assert all("validation_logloss" in c.data.metrics or c.data.tags.get("state") == "pruned" for c in children)
    # Trial 0 is the configuration itself, so tuning never ends worse than it on validation.
    first = next(c for c in children if c.info.run_name == "trial-0")
    config = _config(ws).training
    assert float(first.data.params["learning_rate"]) == config.learning_rate
    assert int(first.data.params["num_leaves"]) == config.num_leaves
    assert int(first.data.params["min_child_samples"]) == config.min_child_samples
    assert "tuning_best_validation_logloss" in parent.data.metrics
    assert get_version(ws.tracking_uri) is None  # register=False


def test_shift_learner_registers_and_loads_without_leaving_temporary_files(
    synthetic_workspace: Workspace, training_set: TrainingSet, tmp_path, monkeypatch  # type: ignore[no-untyped-def]
) -> None:
    import tempfile

    ws = synthetic_workspace
    result = run_training(ws, _config(ws, uplift_learner="shift"), training_set)
    assert result.metrics["uplift_spearman"] > 0.4
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    scorer = load_scorer(ws.tracking_uri)
    assert type(scorer.learner_).__name__ == "ShiftLearner"
    scores = scorer.score(training_set.frame.iloc[:200])
    assert (scores["p_control"].between(0, 1) & scores["p_contact"].between(0, 1)).all()
    assert list(scratch.iterdir()) == []  # the downloaded artifact is gone once the model is in memory
