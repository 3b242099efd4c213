"""Pipeline edges: bad input, models from the future, customer filters."""

from __future__ import annotations

import pandas as pd
import pytest
from nextbest.features.pipeline import as_timestamp, build_features, fit_feature_models
from nextbest.features.registry import customer_features, feature_defs

from nextbest.config import Channel, ChannelsConfig
from nextbest.errors import BadInputError

from .conftest import T, feature_config


@pytest.mark.parametrize(("value", "message"), [
    ("yesterday-ish", "as_of: 'yesterday-ish' is not a date or timestamp; use e.g. 2024-06-30"),
    ("2024-13-45", "as_of: '2024-13-45' is not a date or timestamp"),
    (None, "as_of: a date or timestamp is required"),
])
def test_bad_as_of(value: object, message: str) -> None:
    with pytest.raises(BadInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        as_timestamp(value)  # type: ignore[arg-type]


def test_config_naming_a_missing_customers_column(add, con, config) -> None:
    add("customers", [{"customer_id": 1}])
    fax = Channel(id="fax", cost_per_contact=1.0, consent_field="consent_fax", validity_field="valid_fax")
    bad = config.model_copy(update={"channels": ChannelsConfig(channels=(*config.channels.channels, fax))})
    with pytest.raises(BadInputError, match=r"customers lacks column\(s\) \['consent_fax', 'valid_fax'\].*channels.yaml"):
        build_features(con, T, bad)


def test_models_must_not_come_from_the_future(add, con, config) -> None:
    add("customers", [{"customer_id": 1}])
    models = fit_feature_models(con, T, config)
    with pytest.raises(BadInputError, match="would leak"):
        build_features(con, T - pd.Timedelta(days=1), config, models=models)
    with pytest.raises(BadInputError, match="other feature definitions"):
        build_features(con, T, feature_config(config, engagement_half_life_days=3), models=models)


def test_columns_and_customer_filter(add, con, config) -> None:
    add("customers", [{"customer_id": i} for i in (3, 1, 2)])
    frame = build_features(con, T, config)
    names = [d.name for d in customer_features(feature_defs(config))]
    assert list(frame.columns) == ["customer_id", *names]
    assert list(frame.customer_id) == [1, 2, 3]
    assert frame.drop(columns=[c for c in frame if frame[c].dtype == float]).notna().all().all()
    assert list(build_features(con, T, config, customer_ids=[2]).customer_id) == [2]
