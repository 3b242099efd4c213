"""The fast scoring paths give what the plain per-row definitions give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.config import JOURNEY_STAGES
from nextbest.models import s_learner
from nextbest.models.context import OfferContext
from nextbest.models.lgbm import LGBMResponseClassifier
from nextbest.models.s_learner import SLearner
from nextbest.models.value import ResponseValueModel


@pytest.fixture(scope="module")
def slearner(frame: tuple[pd.DataFrame, np.ndarray, np.ndarray]) -> SLearner:
    X, y, _ = frame
    return SLearner(LGBMResponseClassifier(n_estimators=20, num_leaves=7, early_stopping_rounds=None)).fit(X, y)


@pytest.mark.parametrize("rows", [7, s_learner._STACK_ROWS + 5], ids=["stacked", "in-place"])
def test_both_arms_equal_separate_predictions(slearner: SLearner, frame, rows: int) -> None:  # type: ignore[no-untyped-def]
    X = pd.concat([frame[0]] * (1 + rows // len(frame[0]))).iloc[:rows].reset_index(drop=True)
    p1, p0 = slearner.predict_outcomes(X)
    np.testing.assert_array_equal(p1, slearner.predict_proba(X.assign(contacted=True))[:, 1])
    np.testing.assert_array_equal(p0, slearner.predict_proba(X.assign(contacted=False))[:, 1])


def _context_reference(ctx: OfferContext, X: pd.DataFrame) -> pd.DataFrame:
    """The derived columns computed row by row from the catalogue dicts."""
    out = []
    for _, r in X.iterrows():
        cat = ctx.offer_category.get(r["offer_id"], "") if isinstance(r["offer_id"], str) else ""
        share = r.get(f"spend_share_{cat}", np.nan) if cat in ctx.categories_with_share_ else np.nan
        interest = float(isinstance(r["interest_category"], str) and cat != "" and r["interest_category"] == cat)
        stage = {s: i for i, s in enumerate(JOURNEY_STAGES)}
        target = stage.get(ctx.offer_stage.get(r["offer_id"], ""), np.nan) if isinstance(r["offer_id"], str) else np.nan
        gap = abs(stage.get(r["journey_stage"], np.nan) - target) if isinstance(r["journey_stage"], str) else np.nan
        out.append((share, interest, gap))
    return pd.DataFrame(out, columns=["offer_category_share", "offer_category_interest", "offer_stage_gap"])


@pytest.mark.parametrize("as_categorical", [False, True])
def test_offer_context_matches_the_catalogue(as_categorical: bool) -> None:
    ctx = OfferContext({"a": "shoes", "b": "books", "c": "garden"}, {"a": "awareness", "b": "conversion", "c": "nurturing"})
    X = pd.DataFrame(
        {
            "offer_id": ["a", "b", "c", "zzz", None, "a"],
            "spend_share_shoes": [0.5, 0.1, 0.2, 0.3, 0.4, np.nan],
            "spend_share_books": [0.2, 0.7, 0.1, 0.0, 0.0, 0.1],
            "interest_category": ["shoes", "garden", "garden", None, "shoes", "books"],
            "journey_stage": ["conversion", "awareness", None, "experience", "nurturing", "loyalty"],
        }
    )
    ctx.fit(X)
    rows = X.astype({"offer_id": "category"}) if as_categorical else X
    derived = ctx.transform(rows)[["offer_category_share", "offer_category_interest", "offer_stage_gap"]]
    pd.testing.assert_frame_equal(derived.reset_index(drop=True), _context_reference(ctx, X))


def test_value_model_offer_means_fill_unknown_offers_with_the_global_mean() -> None:
    X = pd.DataFrame({"offer_id": ["a", "a", "b"]})
    model = ResponseValueModel(prior={"c": 7.0}).fit(X, np.array([10.0, 20.0, 40.0]))
    rows = pd.DataFrame({"offer_id": pd.Categorical(["b", "c", "zzz", None, "a"])})
    np.testing.assert_allclose(model.predict(rows), [40.0, 7.0, model.global_mean_, model.global_mean_, 15.0])
