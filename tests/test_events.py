import csv

import numpy as np
import pytest
import torch
from cyclic_bench.protocols.cyclic_mujoco import make_task
from helpers import SMALL, spec_for, toy_stream

from cyclic_bench.errors import ConfigError
from cyclic_bench.events import parse_events, zero_fraction
from cyclic_bench.registry import get_method
from cyclic_bench.results import RunDir
from cyclic_bench.rng import SeedRNG
from cyclic_bench.stream import Stream
from cyclic_bench.trainer import Engine, EngineOptions

TD3, TD3Config = get_method("td3")  # the learner alone, as `method=td3` builds it


def test_zero_fraction_zeroes_exactly_the_fraction_per_seed_and_seeds_differ():
    weights = [torch.ones(3, 10, 7), torch.ones(3, 2, 5, 4)]  # 70 + 40 = 110 entries per seed
    zeroed = zero_fraction(weights, 1 / 3, SeedRNG([0, 1, 2], stream=5))
    per_seed = sum((w.reshape(3, -1) == 0).sum(dim=1) for w in weights)
    assert zeroed.tolist() == per_seed.tolist() == [37, 37, 37]  # round(110 / 3)
    assert not torch.equal(weights[0][0], weights[0][1])  # each seed draws its own positions


def test_zero_fraction_of_a_seed_does_not_depend_on_the_batch():
    alone, batch = [torch.ones(1, 6, 6)], [torch.ones(2, 6, 6)]
    zero_fraction(alone, 0.5, SeedRNG([7], stream=5))
    zero_fraction(batch, 0.5, SeedRNG([3, 7], stream=5))
    assert torch.equal(alone[0][0], batch[0][1])


@pytest.mark.parametrize(
    "item, message",
    [
        ({"step": 0, "kind": "zero_weights", "fraction": 0.3}, "outside the stream"),
        ({"step": 80, "kind": "zero_weights", "fraction": 0.3}, "outside the stream"),
        ({"step": 5, "kind": "melt", "fraction": 0.3}, "kind='melt'"),
        ({"step": 5, "kind": "zero_weights", "fraction": 1.5}, "fraction=1.5"),
        ({"step": 5, "kind": "dynamics", "quantity": "colour"}, "quantity='colour'"),
        ({"step": 5, "kind": "dynamics", "when": 3}, "no setting when"),
    ],
)
def test_bad_events_are_refused_in_one_line(item, message):
    with pytest.raises(ConfigError, match=message):
        parse_events([item], total_steps=80)


def test_engine_applies_a_zero_weights_event_at_its_step_and_records_it(tmp_path):
    stream = toy_stream(events=parse_events([{"step": 30, "kind": "zero_weights", "fraction": 0.25}], 80))
    method = TD3(TD3Config(**SMALL), spec_for(stream, (0, 1)))
    seen = {}

    def watch(t, original=method.observe):  # count zero weights just before step 30 and just after
        seen[len(seen)] = sum(int((w == 0).sum()) for w in method.policy_weights())
        original(t)

    method.observe = watch
    Engine(stream, method, RunDir(tmp_path), EngineOptions(checkpoint_every=10, progress=False)).run()
    n_weights = sum(w[0].numel() for w in method.policy_weights())
    assert seen[30] - seen[29] == 2 * round(0.25 * n_weights)  # both seeds, exactly the fraction
    with open(tmp_path / "events.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["kind"], r["task"]) for r in rows] == [("30", "zero_weights", "b")]


def test_a_dynamics_change_persists_for_the_task_on_later_pools(tmp_path):
    task = make_task("InvertedPendulum", max_episode_steps=20)
    heavier = parse_events([{"step": 10, "kind": "dynamics", "quantity": "body_mass", "scale": 2.0}], 40)
    stream = Stream("pendulum", (task,), steps_per_task=20, cycles=2, eval_every=20, eval_episodes=1, events=heavier)
    method = TD3(TD3Config(**SMALL), spec_for(stream, (0,)))
    engine = Engine(stream, method, RunDir(tmp_path), EngineOptions(checkpoint_every=20, progress=False))
    base = task.make_pool([0]).envs[0].unwrapped.model.body_mass.copy()
    engine.step = 10
    pool = engine.make_pool(0, [1])
    assert np.allclose(pool.envs[0].unwrapped.model.body_mass, base)  # not yet: the event happens at step 10
    engine.step = 11
    assert np.allclose(engine.make_pool(0, [1]).envs[0].unwrapped.model.body_mass, 2 * base)
