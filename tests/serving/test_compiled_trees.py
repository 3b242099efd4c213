"""The service's compiled tree model scores as LightGBM does, and falls back when it cannot."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.config import load_config
from nextbest.decisioning.documents import Context
from nextbest.decisioning.engine import DecisionEngine
from nextbest.decisioning.history import ContactHistory
from nextbest.decisioning.synthetic import random_features
from nextbest.models import candidate_matrix
from nextbest.models.candidate_matrix import COMPILED_TOLERANCE, CompiledForest

from tests.decisioning.test_matrix_scoring import AT, context_scorer, learner_scorer, offer_history

pytest.importorskip("lleaves")


def test_compiled_forest_decides_as_lightgbm(tmp_path) -> None:
    config = load_config()
    model = context_scorer()
    lightgbm_engine = DecisionEngine(config, {"champion": model})
    compiled_engine = DecisionEngine(config, {"champion": model})
    features = random_features(config, 300, seed=11)
    history = offer_history(config, features["customer_id"].to_numpy(), seed=3)
    matrix = compiled_engine.matrix["champion"]
    assert matrix.compile(compiled_engine.prepare(features, history).encode_all().encoded("champion"), tmp_path)
    assert matrix.compiled is not None and len(list(tmp_path.glob("forest-*.o"))) == 1

    def decide(engine: DecisionEngine) -> object:
        customers = engine.prepare(features, history)
        return engine.score_candidates(customers, AT, context=Context(), history=ContactHistory.empty(config))

    a, b = decide(compiled_engine), decide(lightgbm_engine)
    np.testing.assert_allclose(a.probability, b.probability, rtol=0, atol=COMPILED_TOLERANCE)  # type: ignore[attr-defined]
    np.testing.assert_allclose(a.uplift, b.uplift, rtol=0, atol=2 * COMPILED_TOLERANCE)  # type: ignore[attr-defined]
    # Same ranking, same reasons (those always come from LightGBM's TreeSHAP).
    ra = compiled_engine.rank(features, AT, top_k=3, seed=1, offer_history=history)
    rb = lightgbm_engine.rank(features, AT, top_k=3, seed=1, offer_history=history)
    for x, y in zip(ra, rb, strict=True):
        assert [(t.offer_id, t.channel, t.reasons) for t in x.actions] == [(t.offer_id, t.channel, t.reasons) for t in y.actions]

    # A second build loads the cached object code instead of compiling again.
    again = DecisionEngine(config, {"champion": model}).matrix["champion"]
    assert again.compile(compiled_engine.prepare(features, history).encode_all().encoded("champion"), tmp_path)
    assert len(list(tmp_path.glob("forest-*.o"))) == 1


def test_a_forest_that_disagrees_with_lightgbm_is_not_used(monkeypatch) -> None:
    config = load_config()
    engine = DecisionEngine(config, {"champion": context_scorer()})
    matrix = engine.matrix["champion"]
    real = CompiledForest.predict
    monkeypatch.setattr(CompiledForest, "predict", lambda self, m: real(self, m) + 1e-9)
    features = random_features(config, 50, seed=2)
    history = offer_history(config, features["customer_id"].to_numpy(), seed=3)
    assert not matrix.compile(engine.prepare(features, history).encode_all().encoded("champion"))
    assert matrix.compiled is None


def test_an_objective_lleaves_does_not_reproduce_keeps_lightgbm(monkeypatch) -> None:
    config = load_config()
    engine = DecisionEngine(config, {"champion": context_scorer()})
    monkeypatch.setattr(candidate_matrix, "_COMPILABLE_OBJECTIVES", ())
    features = random_features(config, 20, seed=2)
    history = offer_history(config, features["customer_id"].to_numpy(), seed=3)
    assert not engine.matrix["champion"].compile(engine.prepare(features, history).encode_all().encoded("champion"))


@pytest.mark.parametrize("name", ["t-one-arm-level", "bagged-shift"])
def test_every_booster_of_a_learner_is_compiled(name: str, tmp_path) -> None:
    """Both outcome models of a T-learner (two encodings), and the shift learner's models read as raw log-odds.

    (The X-learner's effect regressors compile the same way; its 200-tree default makes that too slow here.)
    """
    config = load_config()
    model = learner_scorer(name)
    lightgbm_engine = DecisionEngine(config, {"champion": model})
    compiled_engine = DecisionEngine(config, {"champion": model})
    features = random_features(config, 100, seed=11)
    history = offer_history(config, features["customer_id"].to_numpy(), seed=3)
    matrix = compiled_engine.matrix["champion"]
    assert matrix.compile(compiled_engine.prepare(features, history).encode_all().encoded("champion"), tmp_path)
    # t: both outcome models; bagged shift: baseline and effect of each member.
    assert matrix.compiled is not None and len(matrix.compiled) == len(list(tmp_path.glob("forest-*.o"))) == {"t-one-arm-level": 2}.get(name, 4)

    def scored(engine: DecisionEngine) -> object:
        return engine.score_candidates(engine.prepare(features, history), AT, context=Context(), history=ContactHistory.empty(config))

    a, b = scored(compiled_engine), scored(lightgbm_engine)
    np.testing.assert_allclose(a.probability, b.probability, rtol=0, atol=COMPILED_TOLERANCE)  # type: ignore[attr-defined]
    np.testing.assert_allclose(a.uplift, b.uplift, rtol=0, atol=2 * COMPILED_TOLERANCE)  # type: ignore[attr-defined]
