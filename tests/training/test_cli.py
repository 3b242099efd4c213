from __future__ import annotations

import pytest
from typer.testing import CliRunner

from nextbest.cli import app
from nextbest.errors import BadInputError
from nextbest.training.trainer import TrainOptions, check_options, run_training
from nextbest.workspace import Workspace


def _invoke(ws: Workspace, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["--workspace", str(ws.root), *args], standalone_mode=False, catch_exceptions=True)


def test_promote_without_a_model_is_a_clear_error(mlflow_workspace: Workspace) -> None:
    result = _invoke(mlflow_workspace, "promote")
    assert "no challenger model registered — run `nextbest train`" in str(result.exception)
    assert getattr(result.exception, "exit_code", None) == 2


def test_models_lists_versions_and_first_promote_is_a_no_op(synthetic_workspace: Workspace, training_set) -> None:  # type: ignore[no-untyped-def]
    ws = synthetic_workspace
    config = ws.config()
    config = config.model_copy(update={"training": config.training.model_copy(update={"n_estimators": 40})})
    run_training(ws, config, training_set)
    listing = _invoke(ws, "models")
    assert listing.exception is None, listing.output
    assert "nextbest-response/1" in listing.output and "champion" in listing.output
    promoted = _invoke(ws, "promote")
    assert promoted.exception is None
    assert "already the champion" in promoted.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (TrainOptions(strategy="per_customer"), "--strategy 'per_customer': use global or per_offer_channel"),  # type: ignore[arg-type]
        (TrainOptions(learner="z"), "--learner 'z': use one of s, t, x, shift"),  # type: ignore[arg-type]
        (TrainOptions(tune_trials=-1), "--tune must be 0 or a positive number"),
    ],
)
def test_invalid_train_options(options: TrainOptions, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        check_options(options)
