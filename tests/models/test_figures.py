"""Training-run figures: drawn from arrays, including the degenerate test periods a closed loop produces."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.models.figures import qini_figure


def test_qini_figure_draws_model_perfect_and_random_curves() -> None:
    rng = np.random.default_rng(0)
    t = rng.integers(0, 2, 400)
    y = (rng.random(400) < 0.1 + 0.1 * t).astype(int)
    fig = qini_figure(y, rng.random(400), t)
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["model", "perfect", "random"]


@pytest.mark.parametrize(("arm", "words"), [(1, "Only contacted decisions"), (0, "Only held-out decisions")])
def test_qini_figure_with_one_arm_says_why_there_is_no_curve(arm: int, words: str) -> None:
    y = np.array([0, 1, 0, 1])
    fig = qini_figure(y, np.linspace(0, 1, 4), np.full(4, arm))
    (text,) = fig.axes[0].texts
    assert text.get_text().startswith(words)
    assert not fig.axes[0].get_lines()
