"""Every registered method, and every (intervention, learner) pair, plays a smoke stream of its action kind and keeps
the seed and checkpoint invariants; every protocol's smoke size runs end to end; `method.base` picks the learner."""

import ast
import json
import math
from pathlib import Path

import pytest
import torch
from helpers import SMALL, assert_same_rows, run_killed_at, spec_for, toy_stream
from method_checks import assert_round_trip, assert_seed_independent, make
from omegaconf import OmegaConf

from cyclic_bench import registry
from cyclic_bench.board.reproduce import run_defaults
from cyclic_bench.cli import compose_config
from cyclic_bench.config import plan_run
from cyclic_bench.errors import ConfigError
from cyclic_bench.intervention import Intervention
from cyclic_bench.registry import (
    default_learner,
    get_method,
    get_protocol,
    intervention_names,
    learner_names,
    method_label,
    method_names,
    pairs,
    protocol_names,
    register_intervention,
    register_learner,
    resolve_method_overrides,
)
from cyclic_bench.results import RunDir
from cyclic_bench.run import train
from cyclic_bench.trainer import Engine, EngineOptions

SMOKE_PROTOCOL = {"continuous": "cyclic_mujoco", "discrete": "bandit"}  # the stream each action kind is tested on
PLAYER = {"continuous": "td3", "discrete": "epsilon_greedy"}  # the method each protocol is tested with
SMALL_POPULATION = ["method.population=4", "method.hidden=[16,16]", "method.generation_steps=25"]  # evolution strategies
INTERVENTIONS_DIR = Path(__file__).resolve().parents[2] / "methods" / "interventions"
ENTRIES = Path(__file__).resolve().parents[2] / "leaderboards" / "cyclic_mujoco" / "smoke" / "entries"
VECTOR_PAIRS = [
    (name, learner) for name, learner in pairs() if get_method(name, learner)[0].observations == "vector"
]  # pixels: test_drq.py
OTHER_LEARNERS = [(name, learner) for name, learner in pairs() if learner != default_learner(name)]
PIXELS = ["protocol=cyclic_dmc", "protocol.observation=pixels", "protocol.image_size=16", "protocol.episode_length=8"]
PIXELS += ["protocol.tasks=[walker-walk,walker-run]", "protocol.steps_per_task=20", "protocol.eval_every=20", "protocol.warmup_steps=10"]
PIXEL_SMALL = ["method.batch_size=8", "method.conv_channels=4", "method.feature_dim=8"]  # with small(): a tiny DrQ
SWITCH = 25  # the task switch of the invariant checks' 40 transitions
ACTING = {  # settings that make a mechanism act within those 40 transitions (updates start at the 16th), and the proof it did
    "redo": (dict(redo_every=5, redo_tau=0.5), lambda agent: agent.intervention.recycled["critic"][0] > 0),
    "cbp": (dict(replacement_rate=0.02, maturity_threshold=5), lambda agent: agent.intervention.replaced["critic"][0] > 0),
    "reset": (dict(reset_every=20), lambda agent: agent.intervention.resets == 2),
    "reset_switch": ({}, lambda agent: agent.intervention.resets == 1),
    "shrink_perturb": (dict(every=9, shrink=0.9, perturb=0.05), lambda agent: agent.intervention.applied[0] == 2),
    "plasticity_injection": ({}, lambda agent: agent.intervention.injections == 1),
    "ne": (
        dict(topology_every=10, review_window=1, review_threshold=10.0),
        lambda agent: agent.intervention.topologies["critic"].grown[0] > 0,
    ),
    "ne_public": (dict(topology_every=5, critic_hidden=[32, 32, 32]), lambda agent: agent.intervention.topologies["critic"].grown[0] > 0),
    "ne_no_growth": (dict(topology_every=10), lambda agent: agent.intervention.trigger.measurements == 2),
    "ne_no_prune": (dict(topology_every=10), lambda agent: agent.intervention.topologies["critic"].grown[0] > 0),
    "ne_no_review": (dict(topology_every=10), lambda agent: agent.intervention.topologies["critic"].grown[0] > 0),
    "hare_tortoise": (dict(reset_every=10, ema=0.9), lambda agent: agent.intervention.resets[0] == 2),
    "neuromodulated": ({}, lambda agent: torch.isfinite(agent.intervention.surprise.expected).all()),
    "neuromodulated_td3": ({}, lambda agent: torch.isfinite(agent.intervention.surprise.expected).all()),
}


def kind_of(method: str) -> str:
    return "continuous" if "continuous" in get_method(method)[0].action_kinds else "discrete"


def small(method: str, learner: str | None = None) -> list[str]:
    """32-unit networks of the method's own depths (ne_public's critic has three hidden layers); small ES populations;
    a pixel learner also gets a tiny encoder and batch, and a short stream of 16 x 16 images (one task switch)."""
    config = get_method(method, learner)[1]()
    if hasattr(config, "population"):  # the paper's 200 members would not divide the smoke stream's evaluation interval
        return SMALL_POPULATION
    if not hasattr(config, "critic_hidden"):
        return []
    sizes = [f"method.{net}_hidden=[{','.join(['32'] * len(getattr(config, f'{net}_hidden')))}]" for net in ("actor", "critic")]
    return sizes + (PIXELS + PIXEL_SMALL if get_method(method, learner)[0].observations == "pixels" else [])


def check_summary(summary: dict, run_dir) -> None:
    assert summary["failed_seeds"] == []
    assert set(summary["final_scores"]) == {*summary["tasks"], *summary["held_out_tasks"]}
    assert all(math.isfinite(v) for scores in summary["final_scores"].values() for v in scores.values())
    assert json.loads((run_dir / "summary.json").read_text()) == summary


@pytest.mark.parametrize("name", method_names())
def test_every_method_runs_a_smoke_stream(tmp_path, name):
    pixels = get_method(name)[0].observations == "pixels"
    protocol = "cyclic_dmc" if pixels else SMOKE_PROTOCOL[kind_of(name)]
    overrides = [
        f"method={name}",
        *([] if pixels else [f"protocol={protocol}"]),
        "protocol.size=smoke",
        "seeds=2",
        "progress=false",
        *small(name),
    ]
    summary = train(compose_config(overrides), tmp_path)
    assert summary["method"] == name and summary["protocol"] == protocol
    check_summary(summary, tmp_path)


@pytest.mark.parametrize(("name", "learner"), OTHER_LEARNERS)
def test_every_intervention_runs_a_smoke_cycle_on_every_other_learner(tmp_path, name, learner):
    """`method=<name> method.base=<learner>` on a short smoke stream: one cycle, both tasks (a visible task switch)."""
    short = ["protocol.cycles=1", "protocol.steps_per_task=100", "protocol.eval_every=50", "protocol.warmup_steps=50"]
    pixels = get_method(name, learner)[0].observations == "pixels"
    overrides = [f"method={name}", f"method.base={learner}", "protocol.size=smoke", *([] if pixels else short), "seeds=2", "progress=false"]
    config = compose_config([*overrides, *small(name, learner)])
    assert config.method.base == learner and config.method.name == name
    summary = train(config, tmp_path)
    assert summary["method"] == f"{name}-{learner}"
    check_summary(summary, tmp_path)


@pytest.mark.parametrize(("name", "learner"), VECTOR_PAIRS)
def test_every_pair_keeps_a_seed_the_same_alone_and_in_a_batch_and_resumes_exactly(name, learner, cpu_threads):
    """With settings that make its mechanism act (ACTING): seed 5 alone = row 1 of seeds (4, 5, 6); a checkpoint
    taken mid-way and loaded into a fresh agent continues bit for bit."""
    settings, acted = ACTING.get(name, ({}, lambda agent: True))
    build = lambda seeds: make(name, learner, seeds, **settings)  # noqa: E731
    assert type(build((0,)).learner).__name__.lower() == learner
    alone, _ = assert_seed_independent(build, steps=40, switches=(SWITCH,))
    assert acted(alone), f"{name} did not act in the test"
    assert_round_trip(build, steps=40, split=30, switches=(SWITCH,))  # after the switch: an injected structure is saved


@pytest.mark.parametrize("name", ["plasticity_injection", "hare_tortoise"])
def test_a_run_on_sac_killed_after_a_task_switch_resumes_to_the_rows_of_an_uninterrupted_one(tmp_path, monkeypatch, name):
    """Through the engine, on the toy stream: the checkpoint after the switch at step 40 holds an injected head (PI)
    or a Tortoise that has followed for a while; the resumed run writes exactly the uninterrupted run's rows."""
    stream = toy_stream()
    method_cls, config_cls = get_method(name, "sac")

    def run(path):
        agent = method_cls(config_cls(**SMALL, **ACTING.get(name, ({}, None))[0]), spec_for(stream, (0, 1)))
        Engine(stream, agent, RunDir(path), EngineOptions(checkpoint_every=stream.eval_every, progress=False)).run()

    run(tmp_path / "whole")
    run_killed_at(45, lambda: run(tmp_path / "killed"), monkeypatch)
    run(tmp_path / "killed")
    assert_same_rows(tmp_path / "killed", tmp_path / "whole")


@pytest.mark.parametrize("protocol", protocol_names())
def test_every_protocol_runs_its_smoke_size(tmp_path, protocol):
    family = get_protocol(protocol)
    method = PLAYER[family.build(family.config(size="smoke")).action_kind]
    overrides = [f"method={method}", f"protocol={protocol}", "protocol.size=smoke", "seeds=2", "progress=false", *small(method)]
    check_summary(train(compose_config(overrides), tmp_path), tmp_path)


@pytest.mark.parametrize("name", method_names())
def test_a_method_is_refused_on_a_protocol_of_another_action_kind(name):
    other = SMOKE_PROTOCOL["discrete" if kind_of(name) == "continuous" else "continuous"]
    if other in protocol_names() and len(get_method(name)[0].action_kinds) == 1:
        with pytest.raises(ConfigError, match=f"method={name!r} cannot play"):
            plan_run(compose_config([f"method={name}", f"protocol={other}", "protocol.size=smoke"]))


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ConfigError, match="known: " + ", ".join(method_names())):
        get_method("nope")
    with pytest.raises(ConfigError, match="known: " + ", ".join(protocol_names())):
        get_protocol("nope")


def test_learners_and_interventions_pair_up_and_each_intervention_defaults_to_td3():
    assert learner_names() == ["drq", "sac", "td3"]
    assert {"redo", "ne", "l2_init", "crelu", "hare_tortoise", "parseval"} <= set(intervention_names())
    for name in intervention_names():
        assert (name, "td3") in pairs() and get_method(name)[1]().base == "td3"
        assert get_method(name)[0].Learner.__name__ == "TD3"
    td3_only = {"neuromodulated_td3", "ne_public"}  # an original name, and a reproduction of a TD3 code base
    assert {(name, "sac") for name in intervention_names() if name not in td3_only} <= set(pairs())
    assert not {(name, "sac") for name in td3_only} & set(pairs())
    assert method_label("redo", "td3") == "redo" and method_label("redo", "sac") == "redo-sac" and method_label("sac", "sac") == "sac"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["method=redo", "method.base=ppo"], "method.base=ppo is not a known learner; known: drq, sac, td3"),
        (["method=td3", "method.base=sac"], "method.base=sac is not allowed: method=td3 is a learner itself; use method=sac"),
        (["method=hebbian", "method.base=sac"], "method.base=sac is not allowed: method=hebbian is a standalone method"),
        (["method=neuromodulated_td3", "method.base=sac"], "not allowed for method=neuromodulated_td3; it runs on: td3"),
        (
            ["method=redo", "method.base=sac", "method.policy_noise=0.3"],
            "method.policy_noise is not a setting of method redo on sac (a setting of td3,",
        ),
        (["method=redo", "method.nope=1"], "method.nope is not a setting of method redo on td3; allowed: "),
        (["method=sac", "method.redo_every=5"], "method.redo_every is not a setting of method sac; allowed: "),
    ],
)
def test_bad_pairs_and_settings_are_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError) as refused:
        compose_config(overrides)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_learner_and_intervention_settings_validate_together():
    config = compose_config(["method=redo", "method.base=sac", "method.lr=1e-4", "method.redo_every=7", "method.init_temperature=0.5"])
    assert (config.method.lr, config.method.redo_every, config.method.init_temperature) == (1e-4, 7, 0.5)
    plan = plan_run(config)
    assert plan.method_cls.Learner.__name__ == "SAC" and plan.method_config.redo_every == 7


def test_sweeps_over_methods_and_learners_become_the_pairs_config_nodes():
    swept = resolve_method_overrides(["method=redo,reset", "method.base=td3,sac", "seeds=2"])
    assert swept == ["method=redo,redo@sac,reset,reset@sac", "seeds=2"]
    assert resolve_method_overrides(["method=redo", "seeds=2"]) == ["method=redo", "seeds=2"]


def test_committed_entries_plan_as_the_learner_they_record_and_as_td3_without_one():
    """Committed entries plan as the pair they record; with `base` removed (the format of entries recorded before
    learners existed) a TD3 entry still plans as TD3 (an entry whose method has since retired a setting is refused
    in one line naming it, whatever its learner)."""
    planned = 0
    for path in sorted(ENTRIES.glob("*.json")):
        entry = json.loads(path.read_text())
        method = entry["config"]["method"]
        learner = method.get("base", "td3")
        older = {key: value for key, value in method.items() if key != "base"}
        for recorded in [method] + ([older] if learner == "td3" else []):
            config = OmegaConf.create(run_defaults() | entry["config"] | {"method": recorded, "seeds": 1, "device": "cpu"})
            try:
                plan = plan_run(config)
            except ConfigError as refused:
                assert "has no setting" in str(refused), path.name
                continue
            assert plan.method_cls.Learner.__name__.lower() == learner and plan.method_config.name == entry["method"], path.name
            planned += 1
    assert planned >= 20


def test_an_intervention_never_imports_a_learner():
    for path in sorted(INTERVENTIONS_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [alias.name for alias in node.names]
                assert not any(n.startswith("cyclic_bench.methods.learners") for n in names), (path.name, names)


def test_a_learner_that_supports_only_some_interventions_pairs_with_only_those(monkeypatch):
    monkeypatch.setattr(registry, "_LEARNERS", dict(registry._LEARNERS))
    monkeypatch.setattr(registry, "_INTERVENTIONS", dict(registry._INTERVENTIONS))
    monkeypatch.setattr(registry, "_PAIRS", dict(registry._PAIRS))
    td3_cls = registry._LEARNERS["td3"]

    @register_learner("narrow")
    class Narrow(td3_cls):
        supports = frozenset({"reset"})

    @register_intervention("probe", learners=("td3",))
    class Probe(Intervention):
        pass

    assert registry.learners_of("reset") == ["td3", "drq", "narrow", "sac"] and registry.learners_of("redo") == ["td3", "drq", "sac"]
    assert registry.learners_of("probe") == ["td3"]
    with pytest.raises(ConfigError, match="method.base=narrow is not allowed for method=redo; it runs on: td3, drq, sac"):
        get_method("redo", "narrow")
    agent = make("reset", "narrow", reset_every=10)
    assert isinstance(agent.learner, Narrow) and torch.equal(agent.active, agent.learner.active)
