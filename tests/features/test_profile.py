"""Profile and geography against hand-computed values."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from nextbest.features.pipeline import build_features
from nextbest.features.registry import life_stage_labels

from .conftest import T

DAY = pd.Timedelta(days=1)


@pytest.fixture
def frame(add, con, config) -> pd.DataFrame:
    add("customers", [
        {"customer_id": 1, "birth_date": dt.date(1990, 7, 3), "gender": "f", "region": "north", "urbanity": "urban",
         "distance_to_store_km": 3.5, "member_since": dt.date(2023, 6, 30), "first_name": "Ann", "email": "a@x.org",
         "postcode": "1234"},
        {"customer_id": 2},
        {"customer_id": 3},
        {"customer_id": 4, "member_since": T.date()},  # joins on the as-of day: not in the snapshot
    ])
    add("interactions", [{"customer_id": 3, "ts": T - 50 * DAY, "type": "web.search"}])
    return build_features(con, T, config).set_index("customer_id")


def test_profile_and_geography(frame: pd.DataFrame) -> None:
    c = frame.loc[1]
    assert c.age == pytest.approx((dt.date(2024, 6, 30) - dt.date(1990, 7, 3)).days / 365.25)
    assert (c.life_stage, c.gender, c.region, c.urbanity, c.distance_to_store_km) == ("25_34", "f", "north", "urban", 3.5)
    assert c.tenure_days == 366.0  # 2023-06-30 to 2024-06-30 spans 29 February
    assert not {"first_name", "email", "postcode", "phone", "street_address"} & set(frame.columns)


def test_unknowns_and_tenure_fallback(frame: pd.DataFrame) -> None:
    c = frame.loc[2]
    assert np.isnan(c.age) and np.isnan(c.distance_to_store_km)
    assert (c.life_stage, c.gender, c.region, c.urbanity, c.tenure_days) == ("unknown",) * 4 + (0.0,)
    assert frame.loc[3].tenure_days == 50.0  # no member_since: since the first interaction
    assert 4 not in frame.index


@pytest.mark.parametrize(("bands", "labels"), [
    ((25, 35, 50, 65), ("under_25", "25_34", "35_49", "50_64", "65_plus")),
    ((18,), ("under_18", "18_plus")),
])
def test_life_stage_labels(bands: tuple[int, ...], labels: tuple[str, ...]) -> None:
    assert life_stage_labels(bands) == labels
