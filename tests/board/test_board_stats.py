import numpy as np
import pytest
from rliable import library as rly
from rliable import metrics

from cyclic_bench.board import stats

REPS = 200


@pytest.fixture
def matrices():
    rng = np.random.default_rng(0)
    return rng.normal(0.5, 0.3, (30, 4)), rng.normal(0.6, 0.3, (25, 4))


def rliable_interval(scores, func, seed: int):
    np.random.seed(seed)
    points, intervals = rly.get_interval_estimates({"m": scores}, func, reps=REPS)
    return np.atleast_1d(points["m"]), np.asarray(intervals["m"]).reshape(2, -1)


def test_aggregates_and_intervals_equal_rliables_own_functions(matrices):
    x, _ = matrices
    ours = stats.aggregate_intervals(x, REPS, seed=7)
    for name, aggregate in stats.AGGREGATES.items():
        point, interval = rliable_interval(x, lambda s, f=aggregate: np.array([f(s)]), seed=7)
        np.testing.assert_allclose(ours[name], [point[0], interval[0, 0], interval[1, 0]], rtol=1e-12)
    assert ours["IQM"][0] == metrics.aggregate_iqm(x)


def test_probability_of_improvement_equals_rliables(matrices):
    x, y = matrices
    assert stats.pairwise_improvement(x, y) == pytest.approx(metrics.probability_of_improvement(x, y), abs=1e-12)
    assert stats.pairwise_improvement(x, x) == 0.5
    np.random.seed(3)
    points, intervals = rly.get_interval_estimates({"x,y": (x, y)}, metrics.probability_of_improvement, reps=REPS)
    expected = [float(points["x,y"]), *np.ravel(intervals["x,y"])]
    np.testing.assert_allclose(stats.probability_of_improvement(x, y, REPS, seed=3), expected, atol=1e-12)


def test_performance_profiles_equal_rliables(matrices):
    x, _ = matrices
    taus = np.linspace(-0.5, 1.5, 41)
    np.random.seed(5)
    profiles, intervals = rly.create_performance_profile({"m": x}, taus, reps=REPS)
    ours, ours_interval = stats.performance_profile(x, taus, REPS, seed=5)
    np.testing.assert_allclose(ours, profiles["m"], atol=1e-12)
    np.testing.assert_allclose(ours_interval, intervals["m"], atol=1e-12)


def test_iqm_curve_equals_rliables_sample_efficiency_recipe():
    scores = np.random.default_rng(1).random((7, 3, 6))  # [runs, tasks, evaluations]
    point, interval = rliable_interval(scores, lambda s: np.array([metrics.aggregate_iqm(s[..., f]) for f in range(s.shape[-1])]), seed=2)
    ours, ours_interval = stats.iqm_curve(scores, REPS, seed=2)
    np.testing.assert_allclose(ours, point, atol=1e-12)
    np.testing.assert_allclose(ours_interval, interval, atol=1e-12)


def test_block_means_are_rliables_per_cell_bootstrap_and_ignore_nan():
    rng = np.random.default_rng(4)
    a, b = rng.random((10, 2, 3)), rng.random((10, 4))
    b[0, 1] = np.nan
    means = stats.block_means({"a": a, "b": b}, REPS, seed=9)
    flat = np.concatenate([a.reshape(10, -1), b], axis=1)
    point, interval = rliable_interval(flat, lambda s: np.nanmean(s, axis=0), seed=9)
    np.testing.assert_allclose(means["a"][0], point[:6].reshape(2, 3))
    np.testing.assert_allclose(means["b"][1], interval[:, 6:])
    assert means["b"][0][1] == pytest.approx(np.nanmean(b[:, 1]))


def test_intervals_are_reproducible_and_leave_numpys_global_generator_alone(matrices):
    x, _ = matrices
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    first = stats.aggregate_intervals(x, REPS, seed=0)
    assert np.random.random() == expected_next
    assert stats.aggregate_intervals(x, REPS, seed=0) == first
    assert stats.aggregate_intervals(x, REPS, seed=1) != first
