"""Aggregate statistics with rliable (Agarwal et al., "Deep RL at the Edge of the Statistical Precipice", NeurIPS 2021).

Every number here is computed by rliable's own functions: `metrics.aggregate_iqm / _median / _mean /
_optimality_gap` with `library.get_interval_estimates` (stratified percentile bootstrap, 95%), and
`library.create_performance_profile`. Where rliable's metric calls scipy once per task or threshold
(probability of improvement, run-score distributions, IQM per evaluation step), the function passed to rliable's
bootstrap is a vectorised equivalent that gives the same numbers (tested against rliable's), so 2000 resamples of a
30-seed board take seconds.
rliable draws its bootstrap indices from numpy's global random generator, so each call runs with `np.random`
seeded to the board's bootstrap seed (and the caller's generator state restored afterwards): the same inputs give
the same intervals, and one row's intervals do not depend on which other rows are on the board.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from rliable import library as rly
from rliable import metrics

AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {
    "IQM": metrics.aggregate_iqm,
    "Median": metrics.aggregate_median,
    "Mean": metrics.aggregate_mean,
    "Optimality gap": metrics.aggregate_optimality_gap,
}


@contextmanager
def seeded_numpy(seed: int) -> Iterator[None]:
    """Seed numpy's global generator (rliable's source of randomness) for the block, then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _interval(scores, func, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """rliable's point estimate [M] and 95% interval [2, M] of `func` over one score matrix (or pair of matrices)."""
    with seeded_numpy(seed):
        points, intervals = rly.get_interval_estimates({"x": scores}, func, reps=reps)
    return np.atleast_1d(points["x"]), np.asarray(intervals["x"]).reshape(2, -1)


def aggregate_intervals(scores: np.ndarray, reps: int, seed: int) -> dict[str, tuple[float, float, float]]:
    """IQM, median, mean and optimality gap of a [runs, tasks] matrix: {name: (point, low, high)}."""
    points, intervals = _interval(scores, lambda s: np.array([f(s) for f in AGGREGATES.values()]), reps, seed)
    return {name: (float(points[i]), float(intervals[0, i]), float(intervals[1, i])) for i, name in enumerate(AGGREGATES)}


def cell_means(values: np.ndarray, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean over runs of every cell of a [runs, ...] array (nan left out), with 95% intervals [2, ...].

    rliable's stratified bootstrap resamples the runs of every cell independently, so each cell's interval is that
    cell's own percentile bootstrap of the mean; one call serves many metrics, tasks or evaluation steps.
    """
    values = np.asarray(values, dtype=float)
    shape = values.shape[1:]
    flat = values.reshape(len(values), -1)

    def means(s: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a cell with no value at all has mean nan
            return np.nanmean(s, axis=0)

    points, intervals = _interval(flat, means, reps, seed)
    return points.reshape(shape), intervals.reshape(2, *shape)


def block_means(blocks: dict[str, np.ndarray], reps: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`cell_means` of several [runs, ...] arrays with the same runs, in one bootstrap call: {name: (points, intervals)}."""
    flat = {name: np.asarray(values, dtype=float).reshape(len(values), -1) for name, values in blocks.items()}
    points, intervals = cell_means(np.concatenate(list(flat.values()), axis=1), reps, seed)
    result, start = {}, 0
    for name, values in blocks.items():
        shape, width = np.shape(values)[1:], flat[name].shape[1]
        result[name] = (points[start : start + width].reshape(shape), intervals[:, start : start + width].reshape(2, *shape))
        start += width
    return result


def pairwise_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """rliable's `metrics.probability_of_improvement` (Mann-Whitney U / (n_x n_y) per task, ties counting one half,
    averaged over tasks), computed by comparing all pairs at once: the same numbers, without a scipy call per task."""
    greater = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    ties = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(greater + 0.5 * ties))


def probability_of_improvement(x: np.ndarray, y: np.ndarray, reps: int, seed: int) -> tuple[float, float, float]:
    """P(X > Y): the probability that a run of X beats a run of Y on a task, averaged over tasks, with its interval
    (stratified independent bootstrap of both matrices)."""
    points, intervals = _interval([x, y], pairwise_improvement, reps, seed)
    return float(points[0]), float(intervals[0, 0]), float(intervals[1, 0])


def score_distribution(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """rliable's run-score distribution (fraction of runs x tasks with score > tau), for all taus at once."""
    return (np.asarray(scores).reshape(-1, 1) > np.asarray(taus)[None, :]).mean(axis=0)


def performance_profile(scores: np.ndarray, taus: np.ndarray, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of runs x tasks with score > tau, per tau, and its interval [2, len(taus)]."""
    with seeded_numpy(seed):
        profiles, intervals = rly.create_performance_profile({"x": scores}, taus, custom_profile_func=score_distribution, reps=reps)
    return np.asarray(profiles["x"]), np.asarray(intervals["x"])


def iqm_per_step(scores: np.ndarray) -> np.ndarray:
    """rliable's `aggregate_iqm` over runs x tasks at each evaluation of a [runs, tasks, evaluations] array: the 25%
    trimmed mean (scipy's trim_mean cut: int(0.25 n) values off each end) of every column, by one sort."""
    columns = np.sort(scores.reshape(-1, scores.shape[-1]), axis=0)
    cut = int(0.25 * len(columns))
    return columns[cut : len(columns) - cut].mean(axis=0)


def iqm_curve(scores: np.ndarray, reps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """IQM at every evaluation of a [runs, tasks, evaluations] array with intervals [2, evaluations]
    (rliable's sample-efficiency curve)."""
    return _interval(scores, iqm_per_step, reps, seed)
