import numpy as np
import pytest
from helpers import toy_stream, toy_task

from cyclic_bench.errors import ConfigError
from cyclic_bench.stream import ActionAdapter, ObservationAdapter, Task


def test_observations_are_padded_to_the_largest_task_and_tagged_when_task_aware():
    stream = toy_stream(task_aware=True)  # tasks of obs size 3 and 5
    adapter = ObservationAdapter(stream)
    assert stream.obs_dim == 5 + 2
    out = adapter(np.array([[1.0, 2.0, 3.0]]), task_index=0)
    assert out.tolist() == [[1, 2, 3, 0, 0, 1, 0]]
    out = adapter(np.arange(5.0)[None], task_index=1)
    assert out.tolist() == [[0, 1, 2, 3, 4, 0, 1]]


def test_task_agnostic_streams_only_pad():
    adapter = ObservationAdapter(toy_stream())
    assert adapter(np.ones((2, 3)), 0).tolist() == [[1, 1, 1, 0, 0]] * 2


def test_actions_keep_the_task_dimensions_and_rescale_to_its_bounds():
    task = Task("t", 2, 2, None, 0, 1, "x", action_low=(-3.0, 0.0), action_high=(3.0, 10.0))
    adapter = ActionAdapter(task)
    out = adapter(np.array([[1.0, -1.0, 0.7, 0.2], [0.0, 0.0, 9.0, 9.0], [5.0, 0.5, 0, 0]]))
    np.testing.assert_allclose(out, [[3.0, 0.0], [0.0, 5.0], [3.0, 7.5]])


def test_default_bounds_are_unit_and_extra_dimensions_are_dropped():
    assert ActionAdapter(toy_task(action_dim=1))(np.array([[0.5, 0.9]])).tolist() == [[0.5]]


@pytest.mark.parametrize("field", ["steps_per_task", "cycles", "eval_every", "eval_episodes"])
@pytest.mark.parametrize("value", [0, -3])
def test_budgets_must_be_positive(field, value):
    with pytest.raises(ConfigError, match=f"{field}={value}"):
        toy_stream(**{field: value})


def test_position_maps_steps_to_cycle_and_task():
    stream = toy_stream(steps_per_task=20, cycles=2)
    assert [stream.position(s) for s in (0, 19, 20, 39, 40, 79)] == [(0, 0), (0, 0), (0, 1), (0, 1), (1, 0), (1, 1)]
    assert stream.total_steps == 80


def test_evaluations_must_close_every_task_visit():
    with pytest.raises(ConfigError, match="eval_every=7 is not allowed: it must divide steps_per_task=20"):
        toy_stream(steps_per_task=20, eval_every=7)
