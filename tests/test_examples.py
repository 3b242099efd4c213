"""Example configurations load, and differ from the packaged defaults only where their comments say."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextbest.config import load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in EXAMPLES.glob("*/config")))
def test_every_example_configuration_loads(folder: str) -> None:
    config = load_config(EXAMPLES / folder / "config")
    assert config.offers.offers and config.channels.channels


def test_the_large_world_training_differs_from_the_defaults_in_the_five_tuned_values() -> None:
    large = load_config(EXAMPLES / "large-world" / "config").training.model_dump()
    default = load_config(None).training.model_dump()
    changed = {k: large[k] for k in large if large[k] != default[k]}
    assert changed == {
        "learning_rate": 0.0185, "num_leaves": 24, "feature_fraction": 0.57, "lambda_l2": 3.86, "min_child_samples": 1326,
    }
