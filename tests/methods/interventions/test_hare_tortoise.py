import pytest
import torch
from helpers import transitions
from method_checks import LEARNERS, make

from cyclic_bench.errors import ConfigError

per_learner = pytest.mark.parametrize("learner", LEARNERS)


def params(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


@per_learner
def test_the_tortoise_follows_its_hare_by_ema_after_each_of_its_steps(learner):
    agent = make("hare_tortoise", learner, ema=0.9, reset_every=0)
    data = list(transitions(2, 17))
    for t in data[:16]:
        agent.observe(t)  # one update (the 16th transition fills a batch)
    tortoises = agent.intervention.tortoises
    before = {name: params(tortoise) for name, tortoise in tortoises.items()}
    agent.observe(data[16])  # the second update: TD3's actor steps now (policy delay 2), SAC's every time
    for name, net in agent.learner.networks.items():
        for old, hare, new in zip(before[name], net.module.parameters(), tortoises[name].parameters(), strict=True):
            torch.testing.assert_close(new, 0.9 * old + 0.1 * hare.detach(), rtol=1e-6, atol=1e-7)
    assert agent.learner.updates == 2


def test_the_tortoise_of_a_network_that_did_not_step_stays():
    agent = make("hare_tortoise", "td3", ema=0.9, reset_every=0)  # TD3 delays its actor's steps
    data = list(transitions(2, 16))
    actor_tortoise = agent.intervention.tortoises["actor"]
    before = params(actor_tortoise)
    for t in data:
        agent.observe(t)  # one update: only TD3's critic stepped
    assert all(torch.equal(a, b) for a, b in zip(before, actor_tortoise.parameters(), strict=True))


@per_learner
def test_every_reset_every_updates_the_hare_takes_the_tortoises_weights_and_keeps_its_optimizer(learner):
    agent = make("hare_tortoise", learner, ema=0.5, reset_every=4)
    for t in transitions(2, 18):
        agent.observe(t)  # updates 1, 2, 3
    critic = agent.learner.networks["critic"]
    steps = critic.optimizer.steps.clone()
    for t in transitions(2, 1, seed=1):
        agent.observe(t)  # update 4: the tortoise follows, then the hare is reset to it
    for hare, tortoise in zip(critic.module.parameters(), agent.intervention.tortoises["critic"].parameters(), strict=True):
        assert torch.equal(hare, tortoise)
    assert (critic.optimizer.steps == steps + 1).all() and agent.intervention.resets.tolist() == [1.0, 1.0]
    assert (agent.diagnostics()["critic_hare_tortoise_distance"] == 0).all()


@per_learner
def test_a_task_switch_resets_the_hare_when_asked_and_failed_seeds_are_left_alone(learner):
    agent = make("hare_tortoise", learner, reset_every=0, at_task_switch=True)
    agent.on_task_start(0)  # nothing learned yet
    for t in transitions(2, 30):
        agent.observe(t)
    agent.deactivate(torch.tensor([True, False]))
    actor = agent.learner.actor
    before = params(actor)
    agent.on_task_start(1)
    tortoise = list(agent.intervention.tortoises["actor"].parameters())
    for old, hare, slow in zip(before, actor.parameters(), tortoise, strict=True):
        assert torch.equal(hare[0], old[0]) and torch.equal(hare[1], slow[1])
    assert agent.intervention.resets.tolist() == [0.0, 1.0]


@per_learner
def test_bad_settings_are_refused(learner):
    with pytest.raises(ConfigError, match="method.ema=1.0 is not allowed"):
        make("hare_tortoise", learner, ema=1.0)
