"""Writes sac_reference.json: three Stable-Baselines3 SAC updates from fixed weights, batches and policy noise.

It records, per update, the three losses and the gradient each optimizer stepped on (temperature, critics, actor),
and the parameters after the last update. test_sac.py replays the updates through this suite's SAC and compares all
of them, so the check runs without SB3 installed. (Parameters alone would be a weak check: Adam's first steps
are about lr * sign(gradient), whatever the gradient's size.) To regenerate, in an environment of its own (SB3 is
not a dependency of the suite), from the repository root:

    python -m venv --system-site-packages ../sb3-env && ../sb3-env/bin/pip install stable-baselines3
    ../sb3-env/bin/python tests/methods/learners/make_sac_reference.py
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
import torch.distributions.normal as normal_module
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure
from stable_baselines3.common.type_aliases import ReplayBufferSamples

OBS, ACT, HIDDEN, BATCH, UPDATES = 3, 2, [8, 8], 4, 3
OUT = Path(__file__).with_name("sac_reference.json")


class Box(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (OBS,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (ACT,), np.float32)


def parameters(model: SAC) -> dict[str, list]:
    tensors = {f"actor.{k}": v for k, v in model.actor.state_dict().items()}
    tensors |= {f"critic.{k}": v for k, v in model.critic.state_dict().items()}
    tensors |= {f"critic_target.{k}": v for k, v in model.critic_target.state_dict().items()}
    return {k: v.tolist() for k, v in tensors.items()} | {"log_ent_coef": model.log_ent_coef.detach().tolist()}


def record_gradients(model: SAC, into: list[dict[str, list]]) -> None:
    """Wrap each optimizer's step so it first copies the gradients it steps on into `into[-1]` (names as above)."""
    named = {
        "actor": [(f"actor.{k}", p) for k, p in model.actor.named_parameters()],
        "critic": [(f"critic.{k}", p) for k, p in model.critic.named_parameters()],
        "ent_coef": [("log_ent_coef", model.log_ent_coef)],
    }
    for owner, optimizer in (("actor", model.actor.optimizer), ("critic", model.critic.optimizer), ("ent_coef", model.ent_coef_optimizer)):
        step = optimizer.step

        def recording_step(*args, step=step, params=named[owner], **kwargs):
            into[-1].update({name: p.grad.tolist() for name, p in params})
            return step(*args, **kwargs)

        optimizer.step = recording_step


def main() -> None:
    torch.manual_seed(0)
    model = SAC("MlpPolicy", Box(), policy_kwargs={"net_arch": HIDDEN}, batch_size=BATCH, learning_starts=0, device="cpu", seed=0)
    model.set_logger(configure(None, []))
    g = torch.Generator().manual_seed(1)
    batches = [
        {
            "obs": torch.rand(BATCH, OBS, generator=g) * 2 - 1,
            "action": torch.rand(BATCH, ACT, generator=g) * 2 - 1,
            "reward": torch.randn(BATCH, generator=g),
            "next_obs": torch.rand(BATCH, OBS, generator=g) * 2 - 1,
            "done": (torch.rand(BATCH, generator=g) < 0.3).float(),
        }
        for _ in range(UPDATES)
    ]
    noise = [torch.randn(2, BATCH, ACT, generator=g) for _ in range(UPDATES)]  # per update: current obs, then next obs
    initial = parameters(model)

    queue = [eps for per_update in noise for eps in per_update]
    normal_module._standard_normal = lambda shape, dtype, device: queue.pop(0).to(dtype).reshape(shape)
    gradients: list[dict[str, list]] = []
    record_gradients(model, gradients)
    losses = []
    for b in batches:
        sample = ReplayBufferSamples(b["obs"], b["action"], b["next_obs"], b["done"][:, None], b["reward"][:, None])
        model.replay_buffer.sample = lambda *args, sample=sample, **kwargs: sample
        gradients.append({})
        model.train(gradient_steps=1, batch_size=BATCH)
        logged = model.logger.name_to_value
        losses.append({name: float(logged[f"train/{name}"]) for name in ("critic_loss", "actor_loss", "ent_coef_loss")})
    assert not queue

    reference = {
        "stable_baselines3": stable_baselines3.__version__,
        "torch": torch.__version__,
        "sizes": {"obs": OBS, "action": ACT, "hidden": HIDDEN, "batch": BATCH},
        "batches": [{k: v.tolist() for k, v in b.items()} for b in batches],
        "noise": [n.tolist() for n in noise],
        "initial": initial,
        "updates": [{"losses": loss, "gradients": grads} for loss, grads in zip(losses, gradients, strict=True)],
        "final": parameters(model),
    }
    OUT.write_text(json.dumps(reference))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
