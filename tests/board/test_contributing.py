"""CONTRIBUTING.md's worked example method runs as written."""

import re
import sys
from pathlib import Path

import torch

from cyclic_bench.cli import compose_config
from cyclic_bench.method import MethodSpec
from cyclic_bench.registry import get_method
from cyclic_bench.run import train

CONTRIBUTING = Path(__file__).resolve().parents[2] / "CONTRIBUTING.md"


def test_the_worked_example_method_registers_and_trains(tmp_path, monkeypatch, cpu_threads):
    (example,) = re.findall(r"```python\n(.*?)```", CONTRIBUTING.read_text(), flags=re.S)
    (tmp_path / "l2_init_example.py").write_text(example)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "l2_init_example", raising=False)
    __import__("l2_init_example")
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


def _spec() -> MethodSpec:
    return MethodSpec(
        obs_dim=3, action_dim=2, action_kind="continuous", seed_ids=(0, 1), n_tasks=1, total_steps=100, device=torch.device("cpu")
    )
