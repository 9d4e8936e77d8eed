"""Every registered method plays a smoke stream of its action kind; every protocol's smoke size runs end to end."""

import dataclasses
import json
import math

import pytest

from cyclic_bench.cli import compose_config
from cyclic_bench.config import plan_run
from cyclic_bench.errors import ConfigError
from cyclic_bench.registry import get_method, get_protocol, method_names, protocol_names
from cyclic_bench.run import train

SMOKE_PROTOCOL = {"continuous": "cyclic_mujoco", "discrete": "bandit"}  # the stream each action kind is tested on
PLAYER = {"continuous": "td3", "discrete": "epsilon_greedy"}  # the method each protocol is tested with
SMALL_NETWORKS = ["method.actor_hidden=[32,32]", "method.critic_hidden=[32,32]"]  # for methods that have these settings
SMALL_POPULATION = ["method.population=4", "method.hidden=[16,16]", "method.generation_steps=25"]  # evolution strategies


def kind_of(method: str) -> str:
    return "continuous" if "continuous" in get_method(method)[0].action_kinds else "discrete"


def small(method: str) -> list[str]:
    fields = {f.name for f in dataclasses.fields(get_method(method)[1])}
    if "population" in fields:  # the paper's 200 members would not divide the smoke stream's evaluation interval
        return SMALL_POPULATION
    return SMALL_NETWORKS if {"actor_hidden", "critic_hidden"} <= fields else []


def check_summary(summary: dict, run_dir) -> None:
    assert summary["failed_seeds"] == []
    assert set(summary["final_scores"]) == {*summary["tasks"], *summary["held_out_tasks"]}
    assert all(math.isfinite(v) for scores in summary["final_scores"].values() for v in scores.values())
    assert json.loads((run_dir / "summary.json").read_text()) == summary


@pytest.mark.parametrize("name", method_names())
def test_every_method_runs_a_smoke_stream(tmp_path, name):
    protocol = SMOKE_PROTOCOL[kind_of(name)]
    overrides = [f"method={name}", f"protocol={protocol}", "protocol.size=smoke", "seeds=2", "progress=false", *small(name)]
    summary = train(compose_config(overrides), tmp_path)
    assert summary["method"] == name and summary["protocol"] == protocol
    check_summary(summary, tmp_path)


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
