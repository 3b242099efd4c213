"""The matrix scoring path decides exactly as the DataFrame path (``Scorer.score`` / ``Scorer.reasons``)."""

from __future__ import annotations

import datetime as dt
import tempfile
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
from nextbest.features.registry import categorical_features, feature_defs, offer_history_features
from nextbest.models.bagged_learner import BaggedLearner
from nextbest.models.candidate_matrix import CandidateMatrix
from nextbest.models.context import OfferContext
from nextbest.models.grouped import PerGroupClassifier
from nextbest.models.lgbm import LGBMResponseClassifier, LGBMValueRegressor
from nextbest.models.response import ResponseModel
from nextbest.models.s_learner import SLearner
from nextbest.models.t_learner import TLearner
from nextbest.training.trainer import base_params, make_model

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


#: Learners as the trainer builds them (``training.uplift_learner``, ``training.ensemble_members``).
#: ``t-one-arm-level``: no control row ever used the web channel, so the two outcome models'
#: encoders differ (web is a level for the contacted model only). ``x-own-encoding``: effect
#: regressors without the outcome model's categories and defaults, as X bundles were saved before
#: they took them (a second encoding).
LEARNERS = {
    "s": ("s", 1), "t": ("t", 1), "x": ("x", 1), "shift": ("shift", 1),
    "bagged-s": ("s", 2), "bagged-shift": ("shift", 2), "t-one-arm-level": ("t", 1), "x-own-encoding": ("x", 1),
}


@lru_cache(maxsize=None)
def learner_scorer(name: str) -> ResponseModel:
    """A small bundle of ``LEARNERS[name]`` built by the trainer, saved and loaded back as the service loads it."""
    learner, members = LEARNERS[name]
    raw = load_config().model_dump()
    raw["training"]["ensemble_members"] = members
    config = NextbestConfig.model_validate(raw)
    X, y = random_training_rows(config, 6000, seed=5)
    rng = np.random.default_rng(5)
    X = X.assign(
        shown_30d=rng.poisson(0.5, len(X)).astype(float), days_since_shown=rng.uniform(0, 90, len(X)),
        contacts_7d=rng.poisson(0.7, len(X)).astype(float), contacts_30d=rng.poisson(2.0, len(X)).astype(float),
    )
    if name == "t-one-arm-level":
        keep = X["contacted"].to_numpy() | (X["channel"].to_numpy() != "web")
        X, y = X.loc[keep].reset_index(drop=True), y[keep]
    params = base_params(config.training) | {
        "n_estimators": 15, "num_leaves": 7, "early_stopping_rounds": None, "n_jobs": 1, "learning_rate": 0.1,
    }
    defaults = {d.name: d.default for d in offer_history_features(feature_defs(config))}
    model = make_model(config, categorical_features(config), defaults, strategy="global", learner=learner, params=params)  # type: ignore[arg-type]
    if name == "x-own-encoding":
        model.set_params(learner__effect_estimator=LGBMValueRegressor(n_estimators=15, num_leaves=7, min_child_samples=50))
    cut = len(X) * 3 // 4
    model.fit(X.iloc[:cut], y[:cut], X_calibration=X.iloc[cut:], y_calibration=y[cut:])
    with tempfile.TemporaryDirectory() as folder:
        return ResponseModel.load(model.save(folder), model_version=f"{name}-model/1")


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


class _ShiftedSLearner(SLearner):
    """A learner from outside this package that changes how it predicts, but not on matrices."""

    def predict_outcomes(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        p1, p0 = super().predict_outcomes(X)
        return np.clip(p1 + 0.01, 0.0, 1.0), p0


def test_other_scorers_keep_the_dataframe_path() -> None:
    config = load_config()
    X, y = random_training_rows(config, 2000, seed=1)
    clf = LGBMResponseClassifier(n_estimators=5, early_stopping_rounds=None)
    offers, channels = [o.id for o in config.offers.offers], [c.id for c in config.channels.channels]
    unknown = [
        TLearner(PerGroupClassifier(clf, min_group_rows=50, min_group_positives=1)),  # per_offer_channel strategy
        _ShiftedSLearner(clf),
        BaggedLearner(_ShiftedSLearner(clf), n_members=2),
    ]
    for learner in unknown:
        model = ResponseModel(learner, calibration="none").fit(X, y)
        assert CandidateMatrix.of(model, offers, channels) is None
        engine = DecisionEngine(config, {"champion": model})
        assert not engine.matrix and not engine.plannable
        out = engine.decide(random_features(config, 20, seed=1), AT, seed=1, explain=True)
        assert len(out.decisions) == 20


@pytest.mark.parametrize("name", list(LEARNERS))
def test_every_learner_scores_on_the_matrix_path_as_its_frame(name: str) -> None:
    """Probabilities and uplifts within 1e-12 of ``ResponseModel.score``, reason codes equal to ``.reasons``."""
    config = load_config()
    model = learner_scorer(name)
    fast, reference = engines(config, model)
    matrix = fast.matrix["champion"]
    # One encoded customer matrix per distinct encoding.
    assert len(matrix.layouts) == {"t-one-arm-level": 2, "x-own-encoding": 2}.get(name, 1)
    features = with_cold_start(random_features(config, 80, seed=3), [10**9])
    oh = offer_history(config, features["customer_id"].to_numpy(), 3)
    sc = fast.score_candidates(features, AT, offer_history=oh)
    scores = model.score(sc.frame)
    np.testing.assert_allclose(sc.probability, scores["p_contact"].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(sc.uplift, scores["uplift"].to_numpy(), rtol=0, atol=1e-12)
    assert np.ptp(sc.uplift) > 0  # the model does tell candidates apart
    rows = np.arange(0, len(sc.cust), 5)
    c, o = sc.cust[rows], sc.offer[rows]
    history = sc.customers.offer_history.lookup(c, o, len(config.offers.offers))
    ours = matrix.reasons(sc.customers.encoded("champion"), c, o, sc.channel[rows], history, top=3)
    assert ours == model.reasons(sc.frame.iloc[rows], top=3)
    assert sum(len(r) for r in ours) > 0
    out = [
        engine.decide(features, AT, context=Context(channel="web"), seed=2, offer_history=oh, top_k=5, explain=True,
                      history=ContactHistory.empty(config))
        for engine in (fast, reference)
    ]
    assert_same_decisions(*out)


@pytest.mark.parametrize("name", ["t-one-arm-level", "x", "bagged-shift"])
def test_every_learner_is_served_per_customer(name: str) -> None:
    """The service's planned ranking needs a matrix path for every arm: each learner now has one."""
    config = load_config()
    fast, reference = engines(config, learner_scorer(name))
    assert fast.plannable
    features = random_features(config, 12, seed=7)
    oh = offer_history(config, features["customer_id"].to_numpy(), 7)
    # The service's block: every customer prepared, then the all-null row unknown ids get.
    blank = complete_features(features.iloc[:0], np.array([-1]), list(features.columns[1:]))
    parts = [fast.prepare(features, oh).encode_all(), fast.prepare(blank, oh.iloc[:0]).encode_all()]
    block = PreparedCustomers.concat(
        parts, frame_of=lambda ids: complete_features(features, ids, list(features.columns[1:]))
    ).remember_reasons(100)
    planned, ranked = ContactHistory.empty(config), ContactHistory.empty(config)
    for step, pos in enumerate([0, 3, 3, 7, 11, len(features)]):
        cid = 10**9 if pos == len(features) else int(features["customer_id"].iloc[pos])
        customers = block.take(np.array([pos]), ids=np.array([cid]))
        plan = fast.plans(customers, AT, Context(), reasons=2)[0]
        got = fast.rank_planned(plan, block, AT, 3, step, history=planned)
        frame = with_cold_start(features.iloc[:0], [cid]) if pos == len(features) else features.iloc[[pos]]
        want = reference.rank(frame, AT, Context(), 3, step, offer_history=oh, history=ranked)[0]
        assert got.model_dump(exclude={"decision_id", "suppressed"}) == want.model_dump(exclude={"decision_id", "suppressed"})


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


@pytest.mark.parametrize("name", ["s", "t-one-arm-level", "x-own-encoding", "bagged-shift"])
def test_new_contact_pressure_encodes_as_the_frame_with_it(name: str) -> None:
    """A customer contacted since the snapshot: the pressure written into the encoded rows equals
    encoding their frame with the new values (every encoding of the learner)."""
    config = load_config()
    fast, _ = engines(config, learner_scorer(name))
    features = random_features(config, 30, seed=8)
    oh = offer_history(config, features["customer_id"].to_numpy(), 8)
    prepared = fast.prepare(features, oh).encode_all()
    assert prepared.pressure, "the feature rows carry contact pressure"
    rng = np.random.default_rng(8)
    changed = {c: np.where(rng.random(len(v)) < 0.3, v + rng.integers(1, 4, len(v)), v) for c, v in prepared.pressure.items()}
    patched = prepared.with_pressure(changed)
    assert patched is not prepared
    want = fast.prepare(features.assign(**changed), oh).encode_all()
    for alias in fast.matrix:
        got, ref = patched.encoded(alias), want.encoded(alias)
        for a, b in zip(got.matrices, ref.matrices, strict=True):
            np.testing.assert_array_equal(a, b)
        for column, values in ref.derived.items():
            np.testing.assert_array_equal(got.derived[column], values)
    # The snapshot's own rows are left as they were (a copy is patched).
    before = fast.prepare(features, oh).encode_all().encoded("champion").matrices[0]
    np.testing.assert_array_equal(prepared.encoded("champion").matrices[0], before)


def test_a_pressure_column_a_derived_feature_reads_is_encoded_from_the_frame() -> None:
    """The shortcut declines a column that is a category or feeds the offer context."""
    model = context_scorer()
    config = load_config()
    matrix = DecisionEngine(config, {"champion": model}).matrix["champion"]
    history = ["shown_30d", "days_since_shown"]
    enc = matrix.encode(random_features(config, 4, seed=1), history)
    rows, values = np.array([0, 2]), np.array([1.0, 2.0])
    assert matrix.with_numbers(enc, rows, {"contacts_7d": values}, history) is not None
    for column in ("category_events", "offer_id", "shown_30d", "gender"):
        assert matrix.with_numbers(enc, rows, {column: values}, history) is None, column
