"""CONTRIBUTING.md works as written: its example method is ruff-clean, registers and trains; its example test passes;
and the pyproject.toml it shows builds a plug-in package whose method the command line finds and trains."""

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import torch

from cyclic_bench.cli import compose_config
from cyclic_bench.method import MethodSpec
from cyclic_bench.registry import get_method
from cyclic_bench.run import train

ROOT = Path(__file__).resolve().parents[2]
CONTRIBUTING = (ROOT / "CONTRIBUTING.md").read_text()


def block(language: str, containing: str) -> str:
    """The one code block of CONTRIBUTING.md in `language` that contains `containing`."""
    (found,) = [b for b in re.findall(rf"```{language}\n(.*?)```", CONTRIBUTING, flags=re.S) if containing in b]
    return found


METHOD = block("python", '@register_method("l2_init")')


def import_example(tmp_path, monkeypatch) -> types.ModuleType:
    """The example method as `cyclic_bench.methods.l2_init`, where CONTRIBUTING.md says to save it."""
    (tmp_path / "l2_init_example.py").write_text(METHOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "l2_init_example", raising=False)
    module = __import__("l2_init_example")
    monkeypatch.setitem(sys.modules, "cyclic_bench.methods.l2_init", module)
    return module


def test_the_worked_example_method_is_ruff_clean_where_it_is_saved():
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--stdin-filename", "methods/l2_init.py", "-"],
            input=METHOD,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_worked_example_method_registers_and_trains(tmp_path, monkeypatch, cpu_threads):
    import_example(tmp_path, monkeypatch)
    method_cls, _ = get_method("l2_init")
    small = ["method.actor_hidden=[16,16]", "method.critic_hidden=[16,16]", "method.batch_size=16"]
    summary = train(
        compose_config(["method=l2_init", "protocol.size=smoke", "seeds=2", "progress=false", "device=cpu", *small]), tmp_path / "run"
    )
    assert summary["method"] == "l2_init" and not summary["failed_seeds"]

    method = method_cls(method_cls.Config(actor_hidden=[8], critic_hidden=[8], strength=1.0), _spec())
    with torch.no_grad():
        for p in method.actor.parameters():
            p.add_(1.0)
    batch = {"obs": torch.zeros(2, 4, 3)}
    plain = super(method_cls, method).actor_loss(batch)
    extra = sum(p.numel() // 2 for p in method.actor.parameters())  # every parameter moved by 1 from its initial value
    torch.testing.assert_close(method.actor_loss(batch) - plain, torch.full((2,), float(extra)))


def test_the_example_test_passes(tmp_path, monkeypatch, cpu_threads):
    import_example(tmp_path, monkeypatch)
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "methods"))  # method_checks, as pytest finds it for tests/methods/
    namespace: dict = {}
    exec(compile(block("python", "def test_"), "tests/methods/test_l2_init.py", "exec"), namespace)
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert len(tests) == 2
    for test in tests:
        test()


def test_the_documented_plugin_package_builds_and_its_method_trains(tmp_path):
    package, site = tmp_path / "package", tmp_path / "site"
    package.mkdir()
    (package / "pyproject.toml").write_text(block("toml", '[project.entry-points."cyclic_bench.methods"]'))
    (package / "cyclic_bench_l2_init.py").write_text(METHOD)
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(site)]
    result = subprocess.run([*install, str(package)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}
    cli = [sys.executable, "-m", "cyclic_bench.cli"]
    listed = subprocess.run([*cli, "list"], capture_output=True, text=True, env=env, timeout=300)
    assert "l2_init" in listed.stdout.split("\n")[0], listed.stdout + listed.stderr
    run = [*cli, "run", "method=l2_init", "protocol.size=smoke", "seeds=1", "device=cpu", "progress=false"]
    small = ["method.actor_hidden=[8,8]", "method.critic_hidden=[8,8]", "method.batch_size=8", f"hydra.run.dir={tmp_path / 'run'}"]
    trained = subprocess.run([*run, *small], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert trained.returncode == 0 and (tmp_path / "run" / "summary.json").is_file(), trained.stdout[-2000:] + trained.stderr[-2000:]


def _spec() -> MethodSpec:
    return MethodSpec(
        obs_dim=3, action_dim=2, action_kind="continuous", seed_ids=(0, 1), n_tasks=1, total_steps=100, device=torch.device("cpu")
    )
