from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nextbest.config import load_config
from nextbest.errors import BadInputError
from nextbest.models import persistence
from nextbest.models.bagged_learner import BaggedLearner
from nextbest.models.context import OfferContext
from nextbest.models.grouped import PerGroupClassifier
from nextbest.models.lgbm import LGBMResponseClassifier
from nextbest.models.response import ResponseModel
from nextbest.models.s_learner import SLearner
from nextbest.models.shift_learner import ShiftLearner
from nextbest.models.t_learner import TLearner
from nextbest.models.value import ResponseValueModel
from nextbest.models.x_learner import XLearner

FAST = {"n_estimators": 40, "min_child_samples": 40}


@pytest.mark.parametrize(
    "learner",
    [
        SLearner(LGBMResponseClassifier(**FAST)),
        TLearner(PerGroupClassifier(LGBMResponseClassifier(**FAST), min_group_rows=500)),
        XLearner(LGBMResponseClassifier(**FAST)),
        ShiftLearner(LGBMResponseClassifier(**FAST), treatment_features=("channel",)),
        BaggedLearner(SLearner(LGBMResponseClassifier(**FAST)), n_members=2),
    ],
    ids=["s-global", "t-per-group", "x", "shift", "bagged-s"],
)
def test_saved_model_scores_identically(learner, frame, tmp_path) -> None:  # type: ignore[no-untyped-def]
    X, y, _ = frame
    model = ResponseModel(learner, calibration="isotonic", value_model=ResponseValueModel(min_rows=50))
    model.fit(X[:8000], y[:8000], revenue=np.where(y[:8000] == 1, 30.0, 0.0), X_calibration=X[8000:10000],
              y_calibration=y[8000:10000], eval_set=(X[8000:10000], y[8000:10000]))
    folder = model.save(tmp_path / "scorer")
    assert not list(folder.glob("*.pkl"))
    loaded = ResponseModel.load(folder, model_version="nextbest-response/7")
    assert loaded.model_version == "nextbest-response/7"
    pd.testing.assert_frame_equal(loaded.score(X[10000:]), model.score(X[10000:]))
    assert loaded.reasons(X[10000:10003]) == model.reasons(X[10000:10003])


@pytest.mark.parametrize(
    "learner",
    [
        SLearner(LGBMResponseClassifier(**FAST)),
        TLearner(LGBMResponseClassifier(**FAST)),
        XLearner(LGBMResponseClassifier(**FAST)),
        BaggedLearner(ShiftLearner(LGBMResponseClassifier(**FAST), treatment_features=("channel",)), n_members=2),
    ],
    ids=["s", "t", "x", "bagged-shift"],
)
def test_bundle_saved_with_the_old_uplift_module_paths_loads(learner, frame, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Bundles saved before the learners left ``nextbest.models.uplift`` name them there; they still load."""
    X, y, _ = frame
    model = ResponseModel(learner, value_model=ResponseValueModel(min_rows=50)).fit(X[:4000], y[:4000])
    folder = model.save(tmp_path / "scorer")
    doc = (folder / "model.json").read_text()
    old = doc
    for cls in (SLearner, TLearner, XLearner, ShiftLearner, BaggedLearner):
        # The writer records f"{cls.__module__}:{cls.__qualname__}": these classes were all in nextbest.models.uplift.
        old = old.replace(f'"{cls.__module__}:{cls.__qualname__}"', f'"nextbest.models.uplift:{cls.__qualname__}"')
    assert old != doc and '"nextbest.models.uplift:' in old
    (folder / "model.json").write_text(old)
    loaded = ResponseModel.load(folder)
    assert type(loaded.learner_) is type(model.learner_)
    pd.testing.assert_frame_equal(loaded.score(X[4000:4500]), model.score(X[4000:4500]))


def test_moved_classes_resolve_to_their_new_modules() -> None:
    for old, new in persistence.MOVED.items():
        module, _, name = new.partition(":")
        cls = getattr(__import__(module, fromlist=[name]), name)
        assert f"{cls.__module__}:{cls.__qualname__}" == new
        assert old.rpartition(":")[2] == name


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"format": 99, "root": None}, "artifact format 99"),
        ({"format": 1, "root": {"__estimator__": "os:system", "params": {}, "fitted": {}}}, "outside nextbest.models"),
        ({"format": 1, "root": {"__what__": 1}}, "unknown node"),
    ],
)
def test_load_refuses_bad_artifacts(doc: dict, message: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(BadInputError, match=message):
        persistence.load(tmp_path)


def test_load_of_a_folder_without_model_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadInputError, match="not a nextbest model artifact"):
        persistence.load(tmp_path)


def test_offer_context_matches_offer_category_and_stage() -> None:
    config = load_config(None)
    ctx = OfferContext.from_config(config)
    X = pd.DataFrame(
        {
            "offer_id": ["book_club", "garden_season", "premium_electronics"],
            "spend_share_books": [0.5, 0.1, 0.0],
            "spend_share_garden": [0.0, 0.3, 0.0],
            "spend_share_electronics": [0.2, 0.2, 0.9],
            "interest_category": ["books", "home", None],
            "journey_stage": ["awareness", "nurturing", "experience"],
        }
    )
    out = ctx.fit(X).transform(X)
    np.testing.assert_allclose(out["offer_category_share"], [0.5, 0.3, 0.9])
    np.testing.assert_array_equal(out["offer_category_interest"], [1.0, 0.0, 0.0])
    # book_club is a nurturing offer, garden_season nurturing, premium_electronics conversion.
    np.testing.assert_array_equal(out["offer_stage_gap"], [1.0, 0.0, 1.0])


def test_offer_context_adds_nothing_without_its_inputs() -> None:
    X = pd.DataFrame({"offer_id": ["book_club"], "age": [30.0]})
    ctx = OfferContext.from_config(load_config(None)).fit(X)
    assert ctx.outputs_ == []
    assert list(ctx.transform(X).columns) == ["offer_id", "age"]
