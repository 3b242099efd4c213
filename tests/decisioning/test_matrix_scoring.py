"""The matrix scoring path decides exactly as the DataFrame path (``Scorer.score`` / ``Scorer.reasons``)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from nextbest.config import NextbestConfig, load_config
from nextbest.decisioning.documents import Context
from nextbest.decisioning.engine import DecisionEngine, complete_features
from nextbest.decisioning.history import ContactHistory
from nextbest.decisioning.prepared import PreparedCustomers
from nextbest.decisioning.synthetic import random_features, random_training_rows
from nextbest.models.candidate_matrix import CandidateMatrix
from nextbest.models.context import OfferContext
from nextbest.models.lgbm import LGBMResponseClassifier
from nextbest.models.response import ResponseModel
from nextbest.models.uplift import SLearner, TLearner

from tests.decisioning.decisioning_helpers import fitted_scorer, uncontacted

AT = dt.datetime(2024, 6, 3, 9, 0)


@lru_cache(maxsize=1)
def context_scorer() -> ResponseModel:
    """An S-learner with offer-context features, masked channel, isotonic calibration and offer history."""
    config = load_config()
    X, y = random_training_rows(config, 6000, seed=5)
    rng = np.random.default_rng(5)
    X = X.assign(shown_30d=rng.poisson(0.5, len(X)).astype(float), days_since_shown=rng.uniform(0, 90, len(X)))
    learner = SLearner(
        LGBMResponseClassifier(n_estimators=20, num_leaves=7, early_stopping_rounds=None, n_jobs=1),
        treatment_features=("channel",),
    )
    model = ResponseModel(learner, calibration="isotonic", context=OfferContext.from_config(config))
    model.fit(X.iloc[:4500], y[:4500], X_calibration=X.iloc[4500:], y_calibration=y[4500:])
    model.model_version = "context-model/1"
    return model


def offer_history(config: NextbestConfig, ids: np.ndarray, seed: int) -> pd.DataFrame:
    """Offer-history rows for some customers, a repeated pair and an offer the catalogue lacks."""
    rng = np.random.default_rng(seed)
    offers = [o.id for o in config.offers.offers]
    n = 3 * len(ids)
    frame = pd.DataFrame({
        "customer_id": rng.choice(ids, n),
        "offer_id": np.asarray([*offers, "retired_offer"], dtype=object)[rng.integers(0, len(offers) + 1, n)],
        "shown_30d": rng.poisson(1.0, n).astype(float),
        "days_since_shown": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(0, 60, n)),
    })
    return pd.concat([frame, frame.iloc[:5].assign(shown_30d=7.0)], ignore_index=True)


def with_cold_start(features: pd.DataFrame, unknown: list[int]) -> pd.DataFrame:
    """``features`` plus all-null rows for ``unknown`` ids, as the service completes them."""
    ids = np.concatenate([features["customer_id"].to_numpy(), unknown])
    return complete_features(features, ids, list(features.columns[1:]))


def engines(config: NextbestConfig, model: ResponseModel) -> tuple[DecisionEngine, DecisionEngine]:
    fast = DecisionEngine(config, {"champion": model})
    reference = DecisionEngine(config, {"champion": model}, matrix_scoring=False)
    assert "champion" in fast.matrix and not reference.matrix
    return fast, reference


def assert_same_decisions(fast: object, reference: object) -> None:
    a, b = fast.decisions.drop(columns="decision_id"), reference.decisions.drop(columns="decision_id")  # type: ignore[attr-defined]
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=0, atol=1e-9)
    fa, fb = fast.actions.drop(columns="decision_id"), reference.actions.drop(columns="decision_id")  # type: ignore[attr-defined]
    pd.testing.assert_frame_equal(fa, fb, check_exact=False, rtol=0, atol=1e-9)
    pd.testing.assert_frame_equal(fast.suppressed, reference.suppressed)  # type: ignore[attr-defined]


@pytest.mark.parametrize("model_of", [fitted_scorer, context_scorer], ids=["plain", "context"])
@pytest.mark.parametrize("seed", [1, 2])
def test_matrix_path_equals_dataframe_path(model_of, seed: int) -> None:
    config = load_config()
    model = model_of()
    fast, reference = engines(config, model)
    features = with_cold_start(random_features(config, 400, seed=seed), [10**9, 10**9 + 1])
    oh = offer_history(config, features["customer_id"].to_numpy(), seed)
    for context in (Context(), Context(channel="web", event="newsletter_signup_recent")):
        out = [
            engine.decide(features, AT, context=context, seed=seed, offer_history=oh, top_k=50, explain=True,
                          history=ContactHistory.empty(config))
            for engine in (fast, reference)
        ]
        assert_same_decisions(*out)
        assert out[0].decisions["cold_start"].sum() == 2
        # Reasons are the model's own contributions, not only the rule codes.
        assert any(":" in r and r.split(":")[0] in model.feature_names_ for rs in out[0].actions["reasons"] for r in rs)


def test_prepared_rows_decide_as_their_frame() -> None:
    """The service's path: one prepared snapshot, rows taken per request (a blank row serves unknown ids).

    The reference ranks the known customers' typed rows and the unknown id's null
    row apart: a frame mixing both turns every column into objects, which changes
    how rules read the known customers' features (a customer's decision must not
    depend on who else is in the micro-batch).
    """
    config = load_config()
    fast, reference = engines(config, context_scorer())
    features = random_features(config, 300, seed=9)
    oh = offer_history(config, features["customer_id"].to_numpy(), 9)
    blank = complete_features(features.iloc[:0], np.array([-1]), list(features.columns[1:]))
    snapshot = PreparedCustomers.concat(
        [fast.prepare(features, oh).encode_all(), fast.prepare(blank, oh.iloc[:0]).encode_all()],
        frame_of=lambda ids: complete_features(features, ids, list(features.columns[1:])),
    )
    rng = np.random.default_rng(0)
    unknown = 10**9
    for _ in range(10):
        pos = rng.choice(len(features), 7, replace=False)
        ids = np.append(features["customer_id"].to_numpy()[pos], unknown)  # unknown: the blank row, renamed
        taken = snapshot.take(np.append(pos, len(features)), ids=ids)
        history = oh[oh["customer_id"].isin(ids)]

        def rank(engine: DecisionEngine, customers: pd.DataFrame | PreparedCustomers) -> list:
            return engine.rank(customers, AT, Context(), 3, 4, offer_history=history, history=ContactHistory.empty(config))

        ours = rank(fast, taken)
        theirs = rank(reference, features.iloc[pos]) + rank(reference, with_cold_start(features.iloc[:0], [unknown]))
        for a, b in zip(ours, theirs, strict=True):
            assert a.model_dump(exclude={"decision_id"}) == b.model_dump(exclude={"decision_id"})
        assert ours[-1].cold_start and ours[-1].customer_id == unknown


def test_reason_codes_equal_the_models() -> None:
    config = load_config()
    model = context_scorer()
    fast, _ = engines(config, model)
    features = random_features(config, 50, seed=4)
    sc = fast.score_candidates(features, AT, offer_history=offer_history(config, features["customer_id"].to_numpy(), 4))
    matrix = fast.matrix["champion"]
    rows = np.arange(0, len(sc.cust), 7)
    c, o = sc.cust[rows], sc.offer[rows]
    history = sc.customers.offer_history.lookup(c, o, len(config.offers.offers))
    ours = matrix.reasons(sc.customers.encoded("champion"), c, o, sc.channel[rows], history, top=3)
    assert ours == model.reasons(sc.frame.iloc[rows], top=3)
    scores = model.score(sc.frame)
    np.testing.assert_allclose(sc.probability, scores["p_contact"].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(sc.uplift, scores["uplift"].to_numpy(), rtol=0, atol=1e-12)


def test_offer_table_equals_transform() -> None:
    config = load_config()
    context = context_scorer().context_
    features = random_features(config, 60, seed=2)
    offers = [o.id for o in config.offers.offers]
    table = context.offer_table(features, offers)
    assert set(table) == set(context.outputs_)
    rows = features.loc[features.index.repeat(len(offers))].reset_index(drop=True).assign(offer_id=offers * len(features))
    derived = context.transform(rows)
    for column, values in table.items():
        np.testing.assert_array_equal(values.ravel(), derived[column].to_numpy(dtype=float))


def test_other_scorers_keep_the_dataframe_path() -> None:
    config = load_config()
    X, y = random_training_rows(config, 2000, seed=1)
    model = ResponseModel(TLearner(LGBMResponseClassifier(n_estimators=5, early_stopping_rounds=None)), calibration="none").fit(X, y)
    offers, channels = [o.id for o in config.offers.offers], [c.id for c in config.channels.channels]
    assert CandidateMatrix.of(model, offers, channels) is None
    engine = DecisionEngine(config, {"champion": model})
    assert not engine.matrix
    out = engine.decide(random_features(config, 20, seed=1), AT, seed=1, explain=True)
    assert len(out.decisions) == 20


def test_remembered_reasons_equal_computed_ones() -> None:
    """A snapshot that remembers reason codes answers repeats from memory with the same codes."""
    config = load_config()
    fast, reference = engines(config, context_scorer())
    features = uncontacted(config, random_features(config, 120, seed=6))
    oh = offer_history(config, features["customer_id"].to_numpy(), 6)
    snapshot = fast.prepare(features, oh).encode_all().remember_reasons(40)
    assert snapshot.memo is not None
    pos = np.arange(0, 120, 3)
    expected = reference.rank(features.iloc[pos], AT, Context(), 5, 2, offer_history=oh, history=ContactHistory.empty(config))
    for _ in range(3):  # the first round fills the memo (and starts it over once full), the others read it
        ours = fast.rank(snapshot.take(pos), AT, Context(), 5, 2, history=ContactHistory.empty(config))
        assert [[a.reasons for a in d.actions] for d in ours] == [[a.reasons for a in d.actions] for d in expected]
        assert 0 < len(snapshot.memo) <= 40
