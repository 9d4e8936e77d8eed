import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from cyclic_bench.methods.learners.sac import SAC, SACConfig
from helpers import inverted_pendulum_returns, transitions
from method_checks import assert_round_trip, assert_seed_independent, spec
from method_checks import make as make_pair

from cyclic_bench.errors import ConfigError

REFERENCE = Path(__file__).with_name("sac_reference.json")  # written by make_sac_reference.py with Stable-Baselines3


def make(seed_ids=(0, 1), **overrides):
    return make_pair("sac", "sac", seed_ids, **overrides)


def tensor(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def load_sb3_weights(learner: SAC, params: dict) -> None:
    """SB3's Linear layers (weight [out, in]) into the seed-batched layers (weight [S=1, *members, in, out])."""
    actor, critic, target = learner.actor, learner.critic, learner.networks["critic"].target
    with torch.no_grad():
        for k, name in enumerate(("latent_pi.0", "latent_pi.2")):
            actor.layers[k].weight.copy_(tensor(params[f"actor.{name}.weight"]).T[None])
            actor.layers[k].bias.copy_(tensor(params[f"actor.{name}.bias"])[None, None])
        head = torch.cat([tensor(params["actor.mu.weight"]), tensor(params["actor.log_std.weight"])])  # mean, then log-std
        actor.layers[2].weight.copy_(head.T[None])
        actor.layers[2].bias.copy_(torch.cat([tensor(params["actor.mu.bias"]), tensor(params["actor.log_std.bias"])])[None, None])
        for net, prefix in ((critic, "critic"), (target, "critic_target")):
            for k, name in enumerate(("0", "2", "4")):
                for j in range(2):
                    net.layers[k].weight[0, j].copy_(tensor(params[f"{prefix}.qf{j}.{name}.weight"]).T)
                    net.layers[k].bias[0, j, 0].copy_(tensor(params[f"{prefix}.qf{j}.{name}.bias"]))
        learner.temperature.log_value.copy_(tensor(params["log_ent_coef"]))


def test_three_updates_match_stable_baselines3_from_the_same_weights_batches_and_noise():
    """SB3 2.x's SAC.train() (run by make_sac_reference.py) and this SAC, each on one seed: at every update the same
    three losses and the same gradients stepped on (temperature, critics, actor), and the same parameters after."""
    reference = json.loads(REFERENCE.read_text())
    sizes = reference["sizes"]
    config = SACConfig(actor_hidden=sizes["hidden"], critic_hidden=sizes["hidden"], batch_size=sizes["batch"])
    agent_spec = dataclasses.replace(spec((0,)), obs_dim=sizes["obs"], action_dim=sizes["action"])
    build = lambda: SAC(config, agent_spec, SAC.network_options(config), torch.ones(1, dtype=torch.bool))  # noqa: E731
    learner, scratch = build(), build()
    load_sb3_weights(learner, reference["initial"])

    stepped: dict[str, torch.Tensor] = {}  # gradient each optimizer steps on, by parameter
    for opt in learner.optimizers():
        step = opt.step
        opt.step = lambda active, opt=opt, step=step: (stepped.update({id(p): p.grad.clone() for p in opt.params}), step(active))
    queue = [tensor(eps)[None] for per_update in reference["noise"] for eps in per_update]  # the draws SB3 made, in its order
    learner.noise_rng.normal = lambda *shape: queue.pop(0).reshape(1, *shape)
    for batch, expected in zip(reference["batches"], reference["updates"], strict=True):
        learner.update({name: tensor(values)[None] for name, values in batch.items()})
        for name, ours in (("critic_loss", "critic_loss"), ("actor_loss", "actor_loss"), ("ent_coef_loss", "temperature_loss")):
            assert learner.last[ours].item() == pytest.approx(expected["losses"][name], rel=1e-5, abs=1e-7), name
        load_sb3_weights(scratch, expected["gradients"] | {k: v for k, v in reference["initial"].items() if "target" in k})
        for name, module in learner.modules().items():
            if name != "critic_target":
                for (key, p), theirs in zip(module.named_parameters(), scratch.modules()[name].parameters(), strict=True):
                    torch.testing.assert_close(stepped[id(p)], theirs.detach(), rtol=1e-4, atol=1e-6, msg=f"gradient of {name}.{key}")
    assert not queue and learner.updates == 3

    load_sb3_weights(scratch, reference["final"])
    for name, module in learner.modules().items():
        for (key, mine), theirs in zip(module.state_dict().items(), scratch.modules()[name].state_dict().values(), strict=True):
            torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6, msg=f"{name}.{key}")


def test_acting_squashes_a_gaussian_and_evaluation_takes_its_mean():
    agent = make()
    obs = torch.randn(2, 500, 4) * 3
    deterministic = agent.act(obs, explore=False)
    mean = agent.learner.policy(obs)[0]
    torch.testing.assert_close(deterministic, torch.tanh(mean))
    explored = agent.act(obs, explore=True)
    assert explored.abs().max() < 1 and not torch.equal(explored, deterministic)
    log_std = agent.learner.policy(obs)[1]
    spread = torch.atanh(explored.clamp(-0.999999, 0.999999)) - mean  # the Gaussian sample minus its mean
    torch.testing.assert_close(spread.std(dim=1).mean(), log_std.exp().mean(), rtol=0.1, atol=0)


def test_log_probabilities_are_those_of_the_squashed_gaussian():
    agent = make((3,))
    learner, obs = agent.learner, torch.randn(1, 6, 4)
    mean, log_std = learner.policy(obs)
    rng_state = learner.noise_rng.state_dict()
    action, log_prob = learner.sample_actions(obs, learner.noise_rng)
    learner.noise_rng.load_state_dict(rng_state)
    eps = learner.noise_rng.normal(*mean.shape[1:])
    gaussian = torch.distributions.Normal(mean, log_std.exp())
    u = mean + log_std.exp() * eps
    expected = gaussian.log_prob(u).sum(-1) - torch.log(1 - torch.tanh(u) ** 2 + 1e-6).sum(-1)
    torch.testing.assert_close(action, torch.tanh(u))
    torch.testing.assert_close(log_prob, expected, rtol=1e-5, atol=1e-5)


def test_the_temperature_falls_while_the_policy_is_more_random_than_its_target_and_rises_otherwise():
    low, high = make(target_entropy=-50.0), make(target_entropy=50.0)  # a 2-d squashed Gaussian never reaches +50 nats
    for agent in (low, high):
        for t in transitions(2, 30):
            agent.observe(t)
    assert (low.learner.alpha() < 1.0).all() and (high.learner.alpha() > 1.0).all()
    assert low.learner.base_entropy == -50.0 and make().learner.base_entropy == -2.0  # default: -|A|


def test_the_exploration_scale_moves_the_entropy_target():
    agent = make()
    agent.learner.exploration_scale = torch.tensor([1.0, math.e])
    torch.testing.assert_close(agent.learner.target_entropy(), torch.tensor([-2.0, -2.0 + 2.0]))  # -|A| + |A| log s


def test_a_seed_trains_the_same_alone_and_inside_a_batch(cpu_threads):
    alone, batch = assert_seed_independent(make)
    assert alone.learner.updates > 40
    obs = torch.randn(1, 3, 4)
    torch.testing.assert_close(alone.act(obs, explore=True)[0], batch.act(obs.expand(3, 3, 4), explore=True)[1], rtol=1e-5, atol=1e-6)


def test_state_round_trip_continues_identically():
    assert_round_trip(make)


def test_an_inactive_seed_stops_updating_its_networks_and_temperature():
    agent = make()
    for t in transitions(2, 20):
        agent.observe(t)
    agent.deactivate(torch.tensor([False, True]))
    frozen = {name: [p.detach()[1].clone() for p in m.parameters()] for name, m in agent.modules().items()}
    for t in transitions(2, 10, seed=3):
        agent.observe(t)
    for name, module in agent.modules().items():
        assert all(torch.equal(f, p[1]) for f, p in zip(frozen[name], module.parameters(), strict=True)), name
    assert not torch.equal(agent.learner.temperature.log_value[0], torch.tensor(0.0))


def test_bad_settings_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="method.init_temperature=0.0 is not allowed"):
        make(init_temperature=0.0)


@pytest.mark.slow
def test_sac_learns_inverted_pendulum(tmp_path):
    """In 8k steps SAC (64-unit networks, for CPU speed) goes from the random policy's return (9.1) to over 40, like TD3."""
    first, final = inverted_pendulum_returns("sac", tmp_path)
    assert final >= 40 and final >= 4 * first, (first, final)
