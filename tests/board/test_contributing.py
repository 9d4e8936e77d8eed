"""CONTRIBUTING.md works as written: its worked example intervention and its test are the suite's own L2 Init files,
word for word; and the pyproject.toml it shows builds a plug-in package whose intervention the command line finds and
trains on every learner."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTRIBUTING = (ROOT / "CONTRIBUTING.md").read_text()


def block(language: str, containing: str) -> str:
    """The one code block of CONTRIBUTING.md in `language` that contains `containing`."""
    (found,) = [b for b in re.findall(rf"```{language}\n(.*?)```", CONTRIBUTING, flags=re.S) if containing in b]
    return found


INTERVENTION = block("python", '@register_intervention("l2_init")')


def test_the_worked_example_and_its_test_are_the_suites_l2_init_files():
    assert (ROOT / "methods" / "interventions" / "l2_init.py").read_text() == INTERVENTION
    assert block("python", "def test_") == (ROOT / "tests" / "methods" / "interventions" / "test_l2_init.py").read_text()


def test_the_documented_plugin_package_builds_and_its_intervention_trains_on_every_learner(tmp_path):
    package, site = tmp_path / "package", tmp_path / "site"
    package.mkdir()
    (package / "pyproject.toml").write_text(block("toml", '[project.entry-points."cyclic_bench.methods"]'))
    (package / "cyclic_bench_l2_init.py").write_text(INTERVENTION.replace('"l2_init"', '"l2_init_plugin"'))  # a name of its own
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(site)]
    result = subprocess.run([*install, str(package)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}
    cli = [sys.executable, "-m", "cyclic_bench.cli"]
    listed = subprocess.run([*cli, "list"], capture_output=True, text=True, env=env, timeout=300)
    assert re.search(r"^  l2_init_plugin +td3, sac$", listed.stdout, re.M), listed.stdout + listed.stderr
    run = [*cli, "run", "method=l2_init_plugin", "method.base=sac", "protocol.size=smoke", "seeds=1", "device=cpu", "progress=false"]
    small = ["method.actor_hidden=[8,8]", "method.critic_hidden=[8,8]", "method.batch_size=8", f"hydra.run.dir={tmp_path / 'run'}"]
    trained = subprocess.run([*run, *small], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert trained.returncode == 0 and (tmp_path / "run" / "summary.json").is_file(), trained.stdout[-2000:] + trained.stderr[-2000:]
