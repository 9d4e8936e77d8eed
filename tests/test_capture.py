"""A captured update computes what the eager one does.

On the CPU (CI), `Agent.update_step` compiled with `torch.compile(fullgraph=True)` runs 200 updates next to the eager
update and must give the same networks, optimizer states, losses and random counters: fullgraph fails on any graph
break (a host read such as `.item()`, a branch on a tensor's value, an op dynamo cannot trace), so this proves the
update is one capturable graph. The `aot_eager` backend traces the forward and backward exactly as inductor would but
runs the traced ops without generating C++ (seconds instead of minutes on 2 cores, and no compiler needed). On CUDA
the same test runs against the CUDA graphs an agent replays on device=cuda (skipped without a GPU).
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from helpers import transitions
from method_checks import make, play
from omegaconf import OmegaConf

from cyclic_bench.capture import UpdateGraphs, update_addresses
from cyclic_bench.cli import compose_config
from cyclic_bench.config import load_run_config, plan_run
from cyclic_bench.method import MethodSpec
from cyclic_bench.registry import get_method, pairs

UPDATES = 200
CASES = [  # (intervention, learner): the learners, and the interventions that change what runs inside the update
    ("td3", "td3"),
    ("sac", "sac"),
    ("ne", "td3"),  # masked optimizer, unmasked forwards, its own batch draw (held in fixed tensors)
    ("l2_init", "td3"),  # an extra loss term
    ("layer_norm", "sac"),  # LayerNorm modules inside both networks
]
SMALL_NETS = dict(actor_hidden=[8, 8], critic_hidden=[8, 8], batch_size=8)


def runner_for(agent, kind: str):
    if kind == "compiled":
        return torch.compile(agent.update_step, fullgraph=True, backend="aot_eager")
    return agent.runner  # the CUDA graphs device=cuda selects


def compiling(kind: str):
    """Dynamo settings of the compiled case: trace loss.backward() into the graph (instead of breaking it there), and
    fail (instead of silently running eagerly) if the update needed more than a few compiled variants."""
    if kind != "compiled":
        return contextlib.nullcontext()
    torch._dynamo.reset()
    return torch._dynamo.config.patch(trace_autograd_ops=True, recompile_limit=4, fail_on_recompile_limit_hit=True)


def agent_pair(name: str, learner: str, kind: str):
    device = torch.device("cuda" if kind == "cuda-graphs" else "cpu")
    eager, captured = (make(name, learner, seed_ids=(0, 1, 2), total_steps=400, **SMALL_NETS) for _ in range(2))
    if device.type == "cuda":
        spec = MethodSpec(**{**vars(eager.spec), "device": device})
        eager_cls = type(eager)
        eager = eager_cls(eager.config, MethodSpec(**{**vars(spec), "capture": False}))
        captured = eager_cls(eager.config, spec)
        assert captured.runner is not None and eager.runner is None
    return eager, captured


def moved(t, device):
    return type(t)(**{k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(t).items()})


def state_tensors(agent) -> dict[str, torch.Tensor]:
    learner = agent.learner
    out = {f"{m}.{k}": v for m, module in agent.modules().items() for k, v in module.state_dict().items()}
    for i, opt in enumerate(agent.optimizers()):
        out |= {f"opt{i}.{k}": v for k, v in flatten(opt.state_dict()).items()}
    out |= {f"last.{k}": v for k, v in learner.last.items()}
    out |= {f"rng.{k}": rng.counter for k, rng in learner.random_streams().items()}
    return out


def flatten(value, prefix: str = "") -> dict[str, torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return {prefix: value}
    items = value.items() if isinstance(value, dict) else enumerate(value)
    return {k: v for key, item in items for k, v in flatten(item, f"{prefix}.{key}").items()}


@pytest.mark.parametrize(
    "kind", ["compiled", pytest.param("cuda-graphs", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
)
@pytest.mark.parametrize(("name", "learner"), CASES)
def test_the_captured_update_equals_the_eager_update_over_200_updates(cpu_threads, kind, name, learner):
    eager, captured = agent_pair(name, learner, kind)
    captured.runner = runner_for(captured, kind)
    device = captured.spec.device
    with compiling(kind):
        for t in transitions(3, UPDATES + 7):  # a batch of 8 is stored after 8 transitions: 200 updates
            t = moved(t, device)
            eager.observe(t)
            captured.observe(t)
    assert eager.learner.updates == captured.learner.updates == UPDATES
    want, got = state_tensors(eager), state_tensors(captured)
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), f"{key} differs after {UPDATES} updates"
    if kind == "cuda-graphs":
        assert captured.graphs.captures >= 1  # the updates came from a replayed graph, not the eager warm-up


def test_addresses_notice_a_replaced_tensor_and_a_new_mask():
    agent = make("td3", "td3", seed_ids=(0, 1), **SMALL_NETS)
    before = update_addresses(agent.learner, agent.intervention)
    assert update_addresses(agent.learner, agent.intervention) == before
    layer = agent.learner.critic.layers[0]
    layer.mask = torch.ones_like(layer.weight)
    with_mask = update_addresses(agent.learner, agent.intervention)
    assert with_mask != before
    layer.weight.data = layer.weight.data.clone()  # what an intervention must not do: a graph would keep the old tensor
    assert update_addresses(agent.learner, agent.intervention) != with_mask


FIRES_OFTEN = {  # settings under which each intervention acts within the 60 transitions below (about 50 updates)
    "reset": dict(reset_every=20, at_task_switch=True),
    "redo": dict(redo_every=10),
    "cbp": dict(replacement_rate=0.5, maturity_threshold=5),
    "shrink_perturb": dict(every=10, at_task_switch=True),
    "hare_tortoise": dict(reset_every=10, at_task_switch=True),
    "ne": dict(topology_every=5),
}
RESTRUCTURES = {"plasticity_injection"}  # adds heads and optimizers at a task switch: the graphs are captured again


CAPTURABLE_PAIRS = [(name, learner) for name, learner in pairs() if get_method(name, learner)[0].Learner.capturable]


@pytest.mark.parametrize(("name", "learner"), CAPTURABLE_PAIRS)
def test_every_intervention_changes_what_the_update_touches_in_place(name, learner):
    """A graph replays on the addresses it captured: an intervention must write in place (a reset, a recycled unit,
    a topology change, a shrink, a learning-rate change), or the agent must see the change and capture again. Pairs
    on a learner that is never captured (DrQ) run their update eagerly and are not collected."""
    defaults = get_method(name, learner)[1]()
    tiny = {**SMALL_NETS, "actor_hidden": [8] * len(defaults.actor_hidden), "critic_hidden": [8] * len(defaults.critic_hidden)}
    agent = make(name, learner, seed_ids=(0, 1), **{**tiny, **FIRES_OFTEN.get(name, {})})
    before = update_addresses(agent.learner, agent.intervention)
    data = list(transitions(2, 60))
    play([(agent, None)], data, first=0, switches={30})
    after = update_addresses(agent.learner, agent.intervention)
    assert (after != before) == (name in RESTRUCTURES)


@pytest.mark.parametrize(("name", "learner"), [("td3", "td3"), ("ne", "td3"), ("plasticity_injection", "sac")])
def test_graph_bookkeeping_runs_each_update_once_and_captures_again_after_a_change_of_structure(cpu_threads, name, learner):
    """The CUDA path's logic on the CPU, with stand-ins for the graph calls: a stand-in capture records nothing (as a
    real one runs no kernel) and its replay runs the update. Every call must then be exactly one update (warm-up,
    capture and replay included), a graph per key (TD3's two), and a change of structure must be captured again."""
    eager, graphed = (make(name, learner, seed_ids=(0, 1), **SMALL_NETS) for _ in range(2))
    graphed.graphs = UpdateGraphs(
        lambda: (update_addresses(graphed.learner, graphed.intervention), graphed.batch_addresses()),
        warm=lambda fn: fn(),
        capture=lambda fn: fn,
    )
    graphed.runner = lambda stepping: graphed.graphs.run(stepping, lambda: graphed.update_step(stepping))
    data = list(transitions(2, 80))
    play([(eager, None), (graphed, None)], data, first=0, switches={40})
    want, got = state_tensors(eager), state_tensors(graphed)
    assert all(torch.equal(want[key], got[key]) for key in want)
    keys = 1 if learner == "sac" else 2  # TD3: critics alone, and critics with actor and targets
    assert graphed.graphs.captures == keys * (2 if name == "plasticity_injection" else 1)


def test_a_run_saved_before_the_capture_setting_existed_still_loads_and_plans_with_capture_on(tmp_path):
    config = compose_config(["protocol.size=smoke", "device=cpu"])
    assert plan_run(config).spec.capture is True
    saved = OmegaConf.to_container(config, resolve=True)
    del saved["capture"]
    OmegaConf.save(OmegaConf.create(saved), tmp_path / "config.yaml")
    assert plan_run(load_run_config(tmp_path / "config.yaml")).spec.capture is True
    off = compose_config(["protocol.size=smoke", "device=cpu", "capture=false"])
    assert plan_run(off).spec.capture is False


def test_a_learner_that_overrides_update_is_not_captured():
    """A subclass with an update of its own (say, augmented batches) must not have TD3's `learn` replayed instead."""
    agent = make("td3", "td3", seed_ids=(0,), **SMALL_NETS)
    assert agent.learner.capturable

    class OwnUpdate(type(agent.learner)):
        def update(self, batch):
            return super().update(batch)

    agent.learner.__class__ = OwnUpdate
    assert not agent.learner.capturable
