"""Segments: membership, profile and exports that never contain an unreachable customer."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextbest.config import load_config
from nextbest.decisioning.ruleset import RuleSet
from nextbest.decisioning.segments import export, members, profile, write_export
from nextbest.decisioning.synthetic import random_features
from nextbest.errors import BadInputError, NotFoundError

CONFIG = load_config()
RULES = RuleSet.from_config(CONFIG)
PERSONAL = [c.id for c in CONFIG.channels.channels if c.personal]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), segment=st.sampled_from(sorted(RULES.segments)), channel=st.sampled_from(PERSONAL))
def test_export_never_contains_an_unreachable_customer(seed, segment, channel) -> None:
    features = random_features(CONFIG, 200, seed)
    result = export(features, RULES, segment, channel, CONFIG)
    chosen = features[features["customer_id"].isin(result.customers["customer_id"])]
    assert chosen[f"consent_{channel}"].astype("boolean").fillna(False).all()
    assert chosen[f"reachable_{channel}"].astype("boolean").fillna(False).all()
    in_segment = int(members(features, RULES, segment).sum())
    assert len(result.customers) + sum(result.left_out.values()) == in_segment


def test_profile_has_size_tiers_stages_and_consent() -> None:
    features = random_features(CONFIG, 500, 1)
    mask = members(features, RULES, "high_value")
    prof = profile(features, mask, CONFIG)
    assert prof["size"] == int(mask.sum()) > 0
    assert set(prof["journey_stage"]) == {"awareness", "nurturing", "experience", "conversion"}
    assert sum(prof["value_tier"].values()) == pytest.approx(1.0)
    assert set(prof["consent"]) == {c.id for c in CONFIG.channels.channels}
    assert all(prof["reachable"][c] <= prof["consent"][c] for c in PERSONAL)


def test_write_export_csv_and_parquet(tmp_path: Path) -> None:
    result = export(random_features(CONFIG, 100, 2), RULES, "lapsing", "email", CONFIG)
    for name in ("out.csv", "out.parquet"):
        path = write_export(result, tmp_path / name)
        back = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        assert list(back.columns) == ["customer_id"]
        assert back["customer_id"].tolist() == result.customers["customer_id"].tolist()


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda f: export(f, RULES, "nobody", "email", CONFIG), NotFoundError, "no segment 'nobody'; configured: high_value"),
        (lambda f: export(f, RULES, "lapsing", "fax", CONFIG), BadInputError, "--channel 'fax' is not a configured channel"),
        (lambda f: write_export(export(f, RULES, "lapsing", "email", CONFIG), Path("x.xlsx")), BadInputError, "use a .csv or .parquet"),
    ],
)
def test_bad_segment_requests(call, error, message) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        call(random_features(CONFIG, 20, 0))
