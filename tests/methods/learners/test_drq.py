"""DrQ: seed k alone equals seed k in a batch and a checkpoint loses nothing, alone and under every intervention it
runs with (each made to act); the update follows the paper's schedule; the memory check refuses what cannot fit
before allocating and sizes the default for 30 seeds; a killed pixel run resumes to an uninterrupted run's rows."""

import io
import math

import pytest
import torch
from cyclic_bench.protocols.cyclic_dmc import CyclicDMCConfig, build
from helpers import assert_same_rows, run_killed_at, spec_for

from cyclic_bench.cli import compose_config
from cyclic_bench.config import plan_run
from cyclic_bench.errors import ConfigError
from cyclic_bench.method import MethodSpec, Transition
from cyclic_bench.registry import get_method
from cyclic_bench.results import RunDir
from cyclic_bench.trainer import Engine, EngineOptions

IMAGE = (9, 16, 16)  # 3 stacked frames of 16 x 16 RGB
TINY = dict(actor_hidden=[32, 32], critic_hidden=[32, 32], batch_size=8, conv_channels=4, feature_dim=8)
EPISODE = 9  # agent steps per episode of the synthetic pixel transitions
ACTING = {  # settings that make each intervention act within 40 transitions (updates start at the 8th), and the proof
    "drq": ({}, lambda agent: agent.learner.updates > 0),
    "ne": (
        dict(topology_every=10, review_window=1, review_threshold=10.0),
        lambda agent: agent.intervention.topologies["critic"].grown[0] > 0,
    ),
    "reset": (dict(reset_every=20), lambda agent: agent.intervention.resets == 2),
    "reset_switch": ({}, lambda agent: agent.intervention.resets == 1),
    "redo": (dict(redo_every=5, redo_tau=0.5), lambda agent: agent.intervention.recycled["critic"][0] > 0),
    "plasticity_injection": ({}, lambda agent: agent.intervention.injections == 1),
    "layer_norm": ({}, lambda agent: len(agent.learner.networks["critic"].module.norms) == 2),
}
SWITCH = 25


def spec(seed_ids, total_steps: int = 500) -> MethodSpec:
    return MethodSpec(math.prod(IMAGE), 2, "continuous", tuple(seed_ids), 2, total_steps, torch.device("cpu"), obs_shape=IMAGE)


def make(name: str, seed_ids, **overrides):
    method_cls, config_cls = get_method(name, "drq")
    settings, _ = ACTING[name]
    return method_cls(config_cls(**{**TINY, **settings, **overrides}), spec(seed_ids))


def transitions(n_seeds: int, count: int, seed: int = 0):
    """Pixel transitions [S, 1, ...] whose observations stack random frames as an environment does, with an episode
    start every EPISODE steps; yields (transition, episode ended)."""
    g = torch.Generator().manual_seed(seed)
    stack = None
    for k in range(count):
        frame = torch.randint(0, 256, (n_seeds, 1, 3, *IMAGE[1:]), generator=g).float()
        if stack is None:
            stack = frame.expand(-1, 3, -1, -1, -1)
        nxt = torch.cat([stack[:, 1:], torch.randint(0, 256, (n_seeds, 1, 3, *IMAGE[1:]), generator=g).float()], dim=1)
        ended = (k + 1) % EPISODE == 0
        yield (
            Transition(
                obs=stack.reshape(n_seeds, 1, -1),
                action=torch.rand(n_seeds, 1, 2, generator=g) * 2 - 1,
                reward=torch.randn(n_seeds, 1, generator=g),
                next_obs=nxt.reshape(n_seeds, 1, -1),
                terminated=torch.zeros(n_seeds, 1, dtype=torch.bool),
                truncated=torch.full((n_seeds, 1), ended),
                learn=True,
            ),
            ended,
        )
        stack = None if ended else nxt


def play(agents_and_rows, data, first: int = 0) -> None:
    """Feed `data` (numbered from `first`) to each agent, its own row only where a row is given; task switch at SWITCH."""
    for k, (t, ended) in enumerate(data, start=first):
        for agent, row in agents_and_rows:
            if k == SWITCH:
                agent.on_task_start(1)
            mine = (
                t
                if row is None
                else Transition(**{key: (v[row : row + 1] if isinstance(v, torch.Tensor) else v) for key, v in vars(t).items()})
            )
            agent.observe(mine)
            if ended:
                agent.on_episode_start(torch.ones(agent.spec.n_seeds, 1, dtype=torch.bool), explore=True)


def same_modules(a, b, row: int | None, exact: bool) -> None:
    assert a.modules().keys() == b.modules().keys()
    for name, module in a.modules().items():
        for key, value in module.state_dict().items():
            other = b.modules()[name].state_dict()[key]
            other = other if row is None else other[row : row + 1]
            if exact:
                assert torch.equal(value, other), f"{name}.{key}"
            else:
                torch.testing.assert_close(value, other, rtol=1e-4, atol=1e-5, msg=f"{name}.{key}")


@pytest.mark.parametrize("name", list(ACTING))
def test_a_seed_trains_the_same_alone_and_in_a_batch_and_a_checkpoint_loses_nothing(name, cpu_threads):
    batch, alone = make(name, (4, 5, 6)), make(name, (5,))
    same_modules(alone, batch, row=1, exact=True)  # the same start
    play([(batch, None), (alone, 1)], list(transitions(3, 40)))
    assert ACTING[name][1](alone), f"{name} did not act in the test"
    same_modules(alone, batch, row=1, exact=False)
    mine, theirs = alone.diagnostics(), batch.diagnostics()
    assert {"encoder_dormant_ratio_tau0", "encoder_gradient_norm", "encoder_srank", "critic_dormant_ratio_tau0"} <= set(mine)
    for key, value in mine.items():
        torch.testing.assert_close(value[0], theirs[key][1], rtol=1e-3, atol=1e-4, equal_nan=True, msg=key)

    data = list(transitions(2, 40, seed=1))
    first = make(name, (0, 1))
    play([(first, None)], data[:30])
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = make(name, (0, 1))
    second.load_state_dict(torch.load(buffer, weights_only=False))
    play([(first, None), (second, None)], data[30:], first=30)
    same_modules(first, second, row=None, exact=True)
    mine, theirs = first.diagnostics(), second.diagnostics()
    for key, value in mine.items():
        torch.testing.assert_close(value, theirs[key], rtol=0, atol=0, equal_nan=True, msg=key)


def test_the_update_follows_drqs_schedule_and_trains_the_encoder_with_the_critic_only():
    agent = make("drq", (0,))
    learner = agent.learner
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in learner.modules().items()}
    play([(agent, None)], list(transitions(1, 9)))  # updates at steps 8 and 9: critic twice, actor and targets once
    assert learner.updates == 2
    moved = {
        name: any(not torch.equal(p, q) for p, q in zip(m.parameters(), before[name], strict=True)) for name, m in learner.modules().items()
    }
    assert moved == {name: True for name in moved}  # every module: online ones by Adam, targets by one soft update
    assert learner.encoder_optimizer.steps[0] == 2 and learner.actor_projection_optimizer.steps[0] == 1
    assert learner.networks["actor"].optimizer.steps[0] == 1 and learner.temperature_optimizer.steps[0] == 1
    batch = learner.sample()
    assert batch["obs"].dtype == torch.uint8 and batch["obs"].shape == (1, 8, *IMAGE)


def test_the_memory_check_refuses_what_cannot_fit_and_the_default_fits_thirty_seeds(monkeypatch):
    from cyclic_bench.methods.learners import drq

    method_cls, config_cls = get_method("drq")
    full = (9, 84, 84)
    gpu = MethodSpec(math.prod(full), 6, "continuous", tuple(range(30)), 3, 600_000, torch.device("cuda"), obs_shape=full)
    monkeypatch.setattr(drq, "device_memory", lambda device: 139 * 2**30)  # the GPU machine: an H200's 139 GiB
    method_cls.check_resources(config_cls(), gpu)  # the default replay and batch fit 30 seeds
    with pytest.raises(ConfigError, match=r"method.buffer_size=200000 with 30 seeds needs about .* GB of cuda memory .* shard the seeds"):
        method_cls.check_resources(config_cls(buffer_size=200_000), gpu)
    monkeypatch.undo()
    too_many = ["method=drq", "protocol=cyclic_dmc", "protocol.observation=pixels", "protocol.size=lite", "seeds=3000", "device=cpu"]
    with pytest.raises(ConfigError, match="with 3000 seeds needs about"):  # through the command's planning: before any folder
        plan_run(compose_config(too_many))


def test_a_pixel_run_killed_mid_visit_resumes_to_the_rows_of_an_uninterrupted_one(tmp_path, monkeypatch):
    """Through the engine on rendered 16 x 16 walker frames: killed after the checkpoint at step 30, mid-episode and
    between evaluations, and resumed, it writes exactly the uninterrupted run's rows (environments, frame stacks, replay)."""
    pixels = dict(size="smoke", observation="pixels", image_size=16, tasks=["walker-walk"], episode_length=8)
    stream = build(CyclicDMCConfig(**pixels, cycles=1, steps_per_task=40, eval_every=20, warmup_steps=10))
    method_cls, config_cls = get_method("drq")

    def run(path):
        agent = method_cls(config_cls(**TINY), spec_for(stream, (0, 1)))
        Engine(stream, agent, RunDir(path), EngineOptions(checkpoint_every=10, progress=False)).run()

    run(tmp_path / "whole")
    run_killed_at(34, lambda: run(tmp_path / "killed"), monkeypatch)
    run(tmp_path / "killed")
    assert_same_rows(tmp_path / "killed", tmp_path / "whole")


def test_drq_learns_to_act_on_what_its_images_show():
    """The easiest pixel task that fits the suite's time: a contextual bandit from images (every episode one step)
    whose frames' brightness encodes the best action t in [-1, 1], reward 1 - |a - t| (shifts leave brightness alone).
    The untrained policy acts near 0 (mean |a - t| about 0.5); within 300 steps every seed's deterministic action
    tracks t to within 0.15, so the encoder, the critic and the actor all learned. (No DMC pixel task improved within
    a test's budget: cartpole-balance from 16 x 16 frames, 600 agent steps, 3 seeds, did not beat its start.)"""
    S, pixels = 3, math.prod(IMAGE)
    method_cls, config_cls = get_method("drq")
    settings = dict(
        actor_hidden=[64, 64], critic_hidden=[64, 64], batch_size=32, conv_channels=8, feature_dim=16, conv_layers=2, image_pad=2
    )
    one_step = MethodSpec(pixels, 1, "continuous", tuple(range(S)), 1, 10_000, torch.device("cpu"), obs_shape=IMAGE)
    agent = method_cls(config_cls(**settings), one_step)
    g = torch.Generator().manual_seed(0)

    def shown(best: torch.Tensor) -> torch.Tensor:
        """[S, N] best actions -> flat frame stacks [S, N, pixels] of that brightness."""
        return ((best + 1) / 2 * 255).round()[..., None].expand(*best.shape, pixels)

    def error() -> torch.Tensor:
        best = torch.rand(S, 64, generator=g) * 2 - 1
        return (agent.act(shown(best), explore=False)[..., 0] - best).abs().mean(dim=1)

    before = error()
    episode = torch.ones(S, 1, dtype=torch.bool)
    for step in range(300):
        best = torch.rand(S, 1, generator=g) * 2 - 1
        obs = shown(best)
        action = agent.act(obs, explore=True) if step >= 32 else torch.rand(S, 1, 1, generator=g) * 2 - 1
        reward = 1 - (action[..., 0] - best).abs()
        agent.observe(Transition(obs, action, reward, obs, episode, torch.zeros_like(episode), learn=True))
        agent.on_episode_start(episode, explore=True)
    after = error()
    assert (before > 0.3).all() and (after < 0.15).all(), (before, after)
