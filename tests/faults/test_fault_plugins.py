"""A plug-in that fails to import is one line (which plug-in, which error) and the rest stays usable; a working plug-in's
package and version go into the run's meta.json and into its board entry."""

import json
import os
import subprocess
import sys
from importlib.metadata import distributions

from fault_helpers import run_in_process

from cyclic_bench import registry
from cyclic_bench.board.entry import entry_from_runs, group_runs

PLUGIN_MODULE = '''
from cyclic_bench.intervention import Intervention
from cyclic_bench.registry import register_intervention


@register_intervention("plugin_td3")
class PluginIntervention(Intervention):
    """An intervention that changes nothing, from another package: on TD3 by default."""
'''
WARNING = (
    "warning: plug-in 'broken' (cyclic_bench.methods = fault_plugin_missing.module, package fault-plugin 0.3) failed to import "
    "and is skipped: ModuleNotFoundError: No module named 'fault_plugin_missing'"
)


def plugin_site(tmp_path):
    """An installed package `fault-plugin` 0.3 with two method entry points: one that works and one whose module is missing."""
    site = tmp_path / "site"
    info = site / "fault_plugin-0.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fault-plugin\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[cyclic_bench.methods]\ngood = fault_plugin_good\nbroken = fault_plugin_missing.module\n")
    (site / "fault_plugin_good.py").write_text(PLUGIN_MODULE)
    return site


def test_a_broken_plugin_is_one_line_and_a_working_one_is_recorded_with_its_version(tmp_path, monkeypatch, capsys):
    registry.load_all()  # the suite's own methods and the installed plug-ins first, as every command does
    site = plugin_site(tmp_path)
    monkeypatch.syspath_prepend(str(site))
    for table in ("_METHODS", "_INTERVENTIONS", "_PAIRS", "_PLUGINS", "_METHOD_PLUGIN"):  # the plug-ins are forgotten after the test
        monkeypatch.setattr(registry, table, type(getattr(registry, table))(getattr(registry, table)))
    (dist,) = distributions(path=[str(site)])
    for entry in sorted(dist.entry_points, key=lambda e: e.name):
        registry.load_plugin(entry.group, entry)
    assert capsys.readouterr().err == WARNING + "\n"
    assert "plugin_td3" in registry.method_names() and "td3" in registry.method_names()

    assert run_in_process("list") == 0
    out = capsys.readouterr().out
    assert "plug-in:       good (fault-plugin 0.3): provides plugin_td3" in out
    assert "plug-in:       broken (fault-plugin 0.3): failed to import: ModuleNotFoundError: No module named 'fault_plugin_missing'" in out

    run_dir = tmp_path / "run"
    tiny = ["protocol.size=smoke", "protocol.cycles=1", "protocol.steps_per_task=100", "protocol.eval_every=100", "seeds=1"]
    small = ["protocol.warmup_steps=50", "protocol.max_episode_steps=20", "method.actor_hidden=[16]", "method.critic_hidden=[16]"]
    assert run_in_process("run", "method=plugin_td3", *tiny, *small, "progress=false", f"hydra.run.dir={run_dir}") == 0
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["method_package"] == {"name": "fault-plugin", "version": "0.3"}
    assert meta["packages"]["fault-plugin"] == "0.3"
    assert {p["name"]: p["error"] is None for p in meta["plugins"]} == {"good": True, "broken": False}
    entry = entry_from_runs(*group_runs([run_dir])[0])
    assert entry["shards"][0]["packages"]["fault-plugin"] == "0.3"


def test_the_real_command_lists_everything_beside_a_broken_plugin(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site(tmp_path)), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "cyclic_bench.cli", "list"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0
    assert done.stderr == WARNING + "\n"
    assert "td3" in done.stdout and "plugin_td3" in done.stdout and "cyclic_mujoco" in done.stdout
