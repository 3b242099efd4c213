"""The feature registry: contract names, no personal data, config-driven names."""

from __future__ import annotations

import pytest
from nextbest.features.registry import (
    CATEGORICAL_FEATURES,
    FEATURES,
    MODEL_FEATURES,
    OFFER_HISTORY_FEATURES,
    definition_hash,
    feature_defs,
)
from nextbest.warehouse.schema import PERSONAL_COLUMNS

from .conftest import feature_config

CONTRACT = (
    "age", "gender", "urbanity", "region", "distance_to_store_km", "tenure_days", "recency_days", "frequency_365d",
    "monetary_365d", "clv_12m", "engagement_score", "engagement_trend", "journey_stage", "basket_cluster",
    "preferred_channel", "birthday_within_7d", "moved_recently", "contract_end_within_7d", "newsletter_signup_recent",
    "order_count_crossed", "interest_category",
)


def test_contract_names_exist(config) -> None:
    names = {f.name for f in FEATURES}
    assert set(CONTRACT) <= names
    for ch in config.channels.channels:
        assert {f"consent_{ch.id}", f"reachable_{ch.id}"} <= names
    assert OFFER_HISTORY_FEATURES == ("shown_30d", "shown_90d", "days_since_shown", "responded_before", "converted_before")


def test_model_features_hold_no_personal_data() -> None:
    assert not set(MODEL_FEATURES) & PERSONAL_COLUMNS
    assert "customer_id" not in MODEL_FEATURES and not set(OFFER_HISTORY_FEATURES) & set(MODEL_FEATURES)
    assert set(CATEGORICAL_FEATURES) <= set(MODEL_FEATURES)
    assert {"gender", "journey_stage", "basket_cluster"} <= set(CATEGORICAL_FEATURES)


@pytest.mark.parametrize(("changes", "present", "absent"), [
    ({"windows_days": (14,)}, ["interactions_14d", "web_interactions_14d"], ["interactions_7d"]),
    ({"families": ("web", "chat")}, ["chat_interactions_30d"], ["app_interactions_30d"]),
    ({"event_horizon_days": 3}, ["birthday_within_3d", "contract_end_within_3d"], ["birthday_within_7d"]),
])
def test_names_follow_the_config(config, changes: dict, present: list[str], absent: list[str]) -> None:
    names = {f.name for f in feature_defs(feature_config(config, **changes))}
    assert set(present) <= names and not set(absent) & names


def test_definition_hash_tracks_the_config(config) -> None:
    assert definition_hash(config) == definition_hash(config)
    assert definition_hash(config) != definition_hash(feature_config(config, engagement_half_life_days=7))
