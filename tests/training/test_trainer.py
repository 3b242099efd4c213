"""The learners make_model builds: contact pressure can only lower the predicted contact effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.config import NextbestConfig, load_config
from nextbest.training.trainer import base_params, make_model

OFFERS = ("fashion_sale", "book_club", "home_makeover")
CHANNELS = ("email", "sms", "web")


def pressured(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Decisions whose contact effect first falls, then *rises* again with recent contacts (a bump that an
    unconstrained model follows), and whose baseline rises with them (busy customers are contacted more)."""
    rng = np.random.default_rng(seed)
    c7 = rng.poisson(0.8, n)
    c30 = c7 + rng.poisson(1.5, n)
    X = pd.DataFrame(
        {
            "engagement_score": rng.gamma(2.0, 2.0, n),
            "contacts_7d": c7,
            "contacts_30d": c30,
            "offer_id": rng.choice(OFFERS, n),
            "channel": rng.choice(CHANNELS, n),
            "contacted": rng.random(n) < 0.7,
        }
    )
    base = -3.0 + 0.2 * X["engagement_score"].to_numpy() + 0.15 * c30
    effect = 1.2 - 0.5 * np.minimum(c7, 2) + 1.0 * (c7 >= 4)
    p = 1 / (1 + np.exp(-(base + X["contacted"].to_numpy() * effect)))
    return X, (rng.random(n) < p).astype(np.int8)


def _fitted(learner: str, config: NextbestConfig) -> object:
    training = config.training.model_copy(update={"n_estimators": 150, "learning_rate": 0.1, "min_child_samples": 50})
    config = config.model_copy(update={"training": training})
    params = base_params(training) | {"early_stopping_rounds": None}
    model = make_model(config, ("offer_id", "channel"), {}, strategy="global", learner=learner, params=params)  # type: ignore[arg-type]
    X, y = pressured(30_000, seed=1)
    X_cal, y_cal = pressured(5_000, seed=2)
    return model.fit(X, y, X_calibration=X_cal, y_calibration=y_cal)


def _uplift_grid(model: object) -> np.ndarray:
    """(rows, contacts_7d 0..6, extra contacts in 30 days 0..8) predicted uplift of 300 decisions."""
    rows, _ = pressured(300, seed=3)
    grid = np.zeros((len(rows), 7, 9))
    for a in range(7):
        for b in range(9):
            frame = rows.drop(columns=["contacted"]).assign(contacts_7d=a, contacts_30d=a + b)
            grid[:, a, b] = model.score(frame)["uplift"].to_numpy()  # type: ignore[attr-defined]
    return grid


@pytest.mark.parametrize("learner", ["s", "shift"])
def test_predicted_contact_effect_never_rises_with_pressure(learner: str) -> None:
    grid = _uplift_grid(_fitted(learner, load_config()))
    assert (np.diff(grid, axis=1) <= 1e-12).all()  # more contacts in 7 days (and so in 30)
    assert (np.diff(grid, axis=2) <= 1e-12).all()  # more contacts in 30 days
    assert grid[:, 0, 0].mean() > grid[:, 3, 4].mean()  # and it does fall: pressure is used, not ignored


def test_without_the_constraint_the_bump_is_learnt() -> None:
    """The check above is not vacuous: unconstrained, the model follows the rise at 4+ contacts."""
    config = load_config()
    config = config.model_copy(update={"training": config.training.model_copy(update={"pressure_features": ()})})
    grid = _uplift_grid(_fitted("s", config))
    assert (np.diff(grid, axis=1) > 1e-6).any()


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (["offer_id"], r"names \['offer_id'\], not numeric customer features"),
        (["no_such_feature"], r"names \['no_such_feature'\], not numeric customer features"),
        (["contacts_7d", "gender"], r"names \['gender'\], not numeric customer features; use e.g. contacts_7d"),
    ],
)
def test_pressure_features_must_be_numeric_customer_features(features: list[str], message: str) -> None:
    raw = load_config().model_dump()
    raw["training"]["pressure_features"] = features
    with pytest.raises(ValueError, match=message):
        NextbestConfig.model_validate(raw)
