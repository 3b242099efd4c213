"""The learners make_model builds: contact pressure can only lower the predicted contact effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.config import NextbestConfig, load_config
from nextbest.features.pressure import constrained_pressure
from nextbest.training.trainer import base_params, make_model

OFFERS = ("fashion_sale", "book_club", "home_makeover")
CHANNELS = ("email", "sms", "web")


def pressured(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Decisions whose contact effect falls with recent contacts (overall and by e-mail) and rises with the
    rest since the latest one, but with bumps the wrong way (an effect rising again at 4+ contacts, a dip
    after 20 days' rest) that an unconstrained model follows; the baseline rises with contacts (busy
    customers are contacted more)."""
    rng = np.random.default_rng(seed)
    c7 = rng.poisson(0.8, n)
    c30 = c7 + rng.poisson(1.5, n)
    email = rng.binomial(c7, 0.5)
    rest = np.where(c7 > 0, rng.integers(0, 7, n), np.where(c30 > 0, rng.integers(7, 30, n), 30)).astype(float)
    X = pd.DataFrame(
        {
            "engagement_score": rng.gamma(2.0, 2.0, n),
            "contacts_7d": c7,
            "contacts_30d": c30,
            "contacts_7d_email": email,
            "days_since_contact": rest,
            "offer_id": rng.choice(OFFERS, n),
            "channel": rng.choice(CHANNELS, n),
            "contacted": rng.random(n) < 0.7,
        }
    )
    base = -3.0 + 0.2 * X["engagement_score"].to_numpy() + 0.15 * c30
    effect = (1.2 - 0.5 * np.minimum(c7, 2) + 1.0 * (c7 >= 4) - 0.3 * email + 0.03 * rest
              - 0.8 * ((rest >= 20) & (rest < 26)))
    p = 1 / (1 + np.exp(-(base + X["contacted"].to_numpy() * effect)))
    return X, (rng.random(n) < p).astype(np.int8)


def _fitted(learner: str, config: NextbestConfig, members: int = 1) -> object:
    training = config.training.model_copy(
        update={"n_estimators": 120, "learning_rate": 0.1, "min_child_samples": 50, "ensemble_members": members}
    )
    config = config.model_copy(update={"training": training})
    params = base_params(training) | {"early_stopping_rounds": None}
    model = make_model(config, ("offer_id", "channel"), {}, strategy="global", learner=learner, params=params)  # type: ignore[arg-type]
    X, y = pressured(20_000, seed=1)
    X_cal, y_cal = pressured(4_000, seed=2)
    return model.fit(X, y, X_calibration=X_cal, y_calibration=y_cal)


#: Each pressure input, the values it is moved over (the others kept), and the way the effect may go.
GRID = {
    "contacts_7d": (np.arange(7), -1),
    "contacts_30d": (np.arange(13), -1),
    "contacts_7d_email": (np.arange(5), -1),
    "days_since_contact": (np.arange(0, 31, 2), 1),
}


def _uplift_along(model: object, feature: str) -> np.ndarray:
    """(values of ``feature``, rows) predicted uplift of 200 decisions with ``feature`` moved over its grid."""
    rows, _ = pressured(200, seed=3)
    values, _ = GRID[feature]
    frame = pd.concat([rows.drop(columns=["contacted"]).assign(**{feature: v}) for v in values], ignore_index=True)
    return model.score(frame)["uplift"].to_numpy().reshape(len(values), len(rows))  # type: ignore[attr-defined]


@pytest.mark.parametrize(("learner", "members"), [("s", 1), ("t", 1), ("x", 1), ("shift", 1), ("s", 2)],
                         ids=["s", "t", "x", "shift", "bagged-s"])
def test_predicted_contact_effect_never_rises_with_pressure(learner: str, members: int) -> None:
    model = _fitted(learner, load_config(), members)
    for feature, (_, direction) in GRID.items():
        steps = direction * np.diff(_uplift_along(model, feature), axis=0)
        assert (steps >= -1e-12).all(), feature  # never the wrong way, for any decision
    fresh, tired = _uplift_along(model, "contacts_7d")[[0, 4]]
    assert fresh.mean() > tired.mean()  # and it does fall: pressure is used, not ignored


def test_without_the_constraint_the_bumps_are_learnt() -> None:
    """The check above is not vacuous: unconstrained, the model follows the bumps."""
    config = load_config()
    config = config.model_copy(update={"training": config.training.model_copy(update={"pressure_features": ()})})
    model = _fitted("s", config)
    assert (np.diff(_uplift_along(model, "contacts_7d"), axis=0) > 1e-6).any()
    assert (np.diff(_uplift_along(model, "days_since_contact"), axis=0) < -1e-6).any()


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (["offer_id"], r"names \['offer_id'\], not contact-pressure features; choose from \['contacts_7d'"),
        (["no_such_feature"], r"names \['no_such_feature'\], not contact-pressure features"),
        (["contacts_7d", "engagement_score"], r"names \['engagement_score'\], not contact-pressure features"),
        (["contacts_7d_fax"], r"names \['contacts_7d_fax'\], not contact-pressure features; choose from .*contacts_7d_email"),
        (["days_since_contact", "days_since_contact"], r"lists \['days_since_contact'\] more than once"),
    ],
)
def test_pressure_features_must_be_contact_pressure_features(features: list[str], message: str) -> None:
    raw = load_config().model_dump()
    raw["training"]["pressure_features"] = features
    with pytest.raises(ValueError, match=message):
        NextbestConfig.model_validate(raw)


def test_every_pressure_feature_is_constrained_by_default_each_its_own_way() -> None:
    config = load_config()
    assert config.training.pressure_features is None
    directions = constrained_pressure(config)
    assert directions["days_since_contact"] == 1
    assert {d for n, d in directions.items() if n != "days_since_contact"} == {-1}
    assert {f"contacts_7d_{c.id}" for c in config.channels.channels} | {"contacts_7d", "contacts_30d"} <= set(directions)
    only = config.model_copy(update={"training": config.training.model_copy(update={"pressure_features": ("contacts_7d",)})})
    assert constrained_pressure(only) == {"contacts_7d": -1}
