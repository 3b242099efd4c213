"""Who a simulated day decides for: the campaign sample and the customers whose trigger event has just begun."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nextbest.config import load_config
from nextbest.simulation.audience import EventOnsets, audience


def _rows(moved: list[bool], birthday: list[bool]) -> pd.DataFrame:
    return pd.DataFrame(
        {"customer_id": np.arange(1, len(moved) + 1), "moved_recently": moved, "birthday_within_7d": birthday}
    )


def test_an_event_prompts_one_decision_at_its_onset_not_one_a_day() -> None:
    config = load_config()
    t = {x.event: i for i, x in enumerate(config.policy.triggers)}
    onsets = EventOnsets()
    day0 = onsets.update(_rows([True, False, False], [False, False, True]), config)
    assert day0[:, t["moved_recently"]].tolist() == [True, False, False]  # the first look: what is on has begun
    day1 = onsets.update(_rows([True, True, False], [False, False, True]), config)
    assert day1[:, t["moved_recently"]].tolist() == [False, True, False]  # still on: no new onset
    assert not day1[:, t["birthday_within_7d"]].any()
    day2 = onsets.update(_rows([False, True, False], [True, False, False]), config)
    assert day2[:, t["birthday_within_7d"]].tolist() == [True, False, False]
    day3 = onsets.update(_rows([True, True, False], [True, False, False]), config)
    assert day3[:, t["moved_recently"]].tolist() == [True, False, False]  # off, then on again: a new event

    frame = _rows([True, True, False], [True, False, False])
    chosen = audience(frame, config, day=3, share=0.0, seed=0, triggered=day3.any(axis=1))
    assert chosen["customer_id"].tolist() == [1]
    everyone_on = audience(frame, config, day=3, share=0.0, seed=0)  # the event states themselves
    assert everyone_on["customer_id"].tolist() == [1, 2]
