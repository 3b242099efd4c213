"""Paired, reproducible randomness."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.world import rng as wr


def test_uniforms_are_uniform_and_in_the_open_interval() -> None:
    u = wr.uniforms(wr.stream_key(1, "test"), np.arange(200_000))
    assert 0.0 < u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01  # neighbouring ids are independent


def test_a_customers_draw_does_not_depend_on_the_batch() -> None:
    key = wr.stream_key(3, "respond", 17)
    ids = np.array([5, 9, 12, 40])
    alone = wr.uniforms(key, ids[[2]], 4)
    batch = wr.uniforms(key, ids[::-1], 4)
    assert alone[0] == batch[1]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((1, "x", 0), (2, "x", 0)),  # seed
        ((1, "x", 0), (1, "y", 0)),  # stream
        ((1, "x", 0), (1, "x", 1)),  # day
    ],
)
def test_keys_differ_by_seed_stream_and_day(a: tuple[int, str, int], b: tuple[int, str, int]) -> None:
    ids = np.arange(100)
    assert not np.array_equal(wr.uniforms(wr.stream_key(*a), ids), wr.uniforms(wr.stream_key(*b), ids))


def test_counters_give_independent_draws() -> None:
    key = wr.stream_key(0, "c")
    ids = np.arange(50_000)
    assert abs(np.corrcoef(wr.uniforms(key, ids, 0), wr.uniforms(key, ids, 1))[0, 1]) < 0.02


@pytest.mark.parametrize("lam", [0.05, 0.4, 3.0, 12.0])
def test_poisson_inversion_has_the_right_mean_and_variance(lam: float) -> None:
    u = wr.uniforms(wr.stream_key(9, "p"), np.arange(100_000))
    k = wr.poisson(u, np.full(u.shape, lam))
    assert abs(k.mean() - lam) < 4 * np.sqrt(lam / len(k))
    assert abs(k.var() - lam) < 0.05 * lam + 0.01


def test_poisson_is_monotone_in_the_rate_for_a_fixed_uniform() -> None:
    u = wr.uniforms(wr.stream_key(9, "m"), np.arange(10_000))
    assert np.all(wr.poisson(u, np.full(u.shape, 0.5)) <= wr.poisson(u, np.full(u.shape, 0.8)))


def test_choice_cdf_picks_the_first_column_above_the_uniform() -> None:
    cdf = np.array([[0.2, 0.5, 1.0], [0.2, 0.5, 1.0], [0.0, 0.0, 1.0]])
    assert wr.choice_cdf(np.array([0.1, 0.6, 0.3]), cdf).tolist() == [0, 2, 2]
