"""Normalised scores at the episode length a stream plays: a random policy scores 0 (within its noise) at every
size of every episode-scored protocol, and the lookup rule between measured lengths is the documented one."""

import numpy as np
import pytest

from cyclic_bench.normalization import measure_random_returns, random_return_at, scaled_reference
from cyclic_bench.registry import get_protocol

ALL_MORPHOLOGIES = ["standard", "short_front_left", "short_front_right", "short_back_left", "short_back_right"] + [
    f"no_{leg}" for leg in ("front_left", "front_right", "back_left", "back_right")
]
EPISODES = 8  # fresh random episodes per task and length (the shipped tables hold 30 to 100)


def streams_at_every_length():
    """(protocol, settings) covering every task of every episode-scored protocol at every episode length its sizes play."""
    cases = []
    for size in ("smoke", "demo", "full"):  # lite plays full's 1000-step episodes
        cases.append(("cyclic_mujoco", dict(size=size, tasks=["HalfCheetah", "Hopper", "Walker2d", "Ant", "InvertedPendulum"])))
    for size in ("smoke", "full"):  # lite plays full's 1000-step episodes
        cases.append(("ant_morphology", dict(size=size, train=ALL_MORPHOLOGIES, held_out=[])))
    for stream in ("walker", "quadruped", "cross_body", "dog"):
        # dog at 1000 steps (50 episodes in the table) takes minutes to re-measure on a CPU: its 50-step table is tested
        cases += [("cyclic_dmc", dict(size=size, stream=stream)) for size in (("smoke",) if stream == "dog" else ("smoke", "full"))]
    return cases


@pytest.mark.slow
@pytest.mark.parametrize(("protocol", "settings"), streams_at_every_length(), ids=lambda v: v if isinstance(v, str) else v["size"])
def test_a_random_policy_scores_zero_within_its_noise_at_every_size(protocol, settings):
    family = get_protocol(protocol)
    stream = family.build(family.config(**settings))
    fresh = measure_random_returns(stream, EPISODES, seed=12345)  # other environment seeds and actions than the tables'
    for task in stream.eval_tasks:
        assert task.random_source.startswith("uniform random actions, measured over"), (task.name, task.random_source)
        table_stderr = float(task.random_source.rsplit("standard error ", 1)[1])
        mean, stderr = fresh[task.name]["mean"], fresh[task.name]["stderr"]
        noise = np.hypot(stderr, table_stderr) + 0.05  # + half the tables' rounding step
        assert abs(mean - task.random_return) <= 4 * noise, (task.name, mean, task.random_return, noise)
        assert abs(task.normalize(mean)) <= 4 * noise / (task.reference_return - task.random_return)
        assert task.normalize(task.reference_return) == pytest.approx(1.0)


def test_unmeasured_lengths_interpolate_between_measured_ones_and_extrapolate_the_last_rate():
    table = {50: (-10.0, 1.0, 100), 200: (-40.0, 2.0, 100)}
    assert random_return_at(table, 50) == (-10.0, "uniform random actions, measured over 100 episodes of 50 steps, standard error 1")
    value, source = random_return_at(table, 100)
    assert value == pytest.approx(-20.0) and "interpolated between the returns measured at 50 and 200 steps" in source
    assert random_return_at(table, 25)[0] == pytest.approx(-5.0)  # through return 0 at length 0
    value, source = random_return_at(table, 400)
    assert value == pytest.approx(-80.0) and "extrapolated" in source and "not measured at 400 steps" in source
    assert scaled_reference(3000.0, 50) == pytest.approx(150.0)


def test_the_interpolation_rule_holds_at_a_length_no_size_plays():
    """HalfCheetah never terminates and Hopper falls within tens of steps: the two shapes a return-vs-length curve takes."""
    family = get_protocol("cyclic_mujoco")
    stream = family.build(family.config(size="smoke", tasks=["HalfCheetah", "Hopper"], max_episode_steps=120))
    fresh = measure_random_returns(stream, 30, seed=777)
    for task in stream.tasks:
        assert "interpolated between the returns measured at 50 and 200 steps" in task.random_source
        noise = np.hypot(fresh[task.name]["stderr"], 2.0) + 0.05  # 2.0: about the neighbouring tables' standard errors
        assert abs(fresh[task.name]["mean"] - task.random_return) <= 4 * noise, (task.name, fresh[task.name], task.random_return)
