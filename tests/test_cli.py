import os
import re
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from cyclic_bench.cli import main


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["method=nope"], "method='nope' is not a known method; known: "),
        (["protocol=nope"], "protocol='nope' is not a known protocol; known: "),
        (["seeds=0"], "seeds=0"),
        (["seeds=-2"], "seeds=-2"),
        (["seeds=abc"], "abc"),
        (["protocol.steps_per_task=0"], "steps_per_task=0"),
        (["protocol.cycles=-1"], "cycles=-1"),
        (["protocol.eval_every=0"], "eval_every=0"),
        (["protocol.size=huge"], "protocol.size='huge' is not a size of cyclic_mujoco; allowed: smoke, demo, lite, full"),
        (["protocol.tasks=[Nope]"], "task 'Nope' is not a cyclic_mujoco task; allowed: "),
        (["device=tpu"], "device='tpu' is not allowed; allowed: auto, cpu, cuda"),
        (["method.nope=1"], "nope"),
        (["resume=/nonexistent/run"], "resume='/nonexistent/run' is not a run directory"),
        (["resume=/nonexistent/run", "seeds=4"], "is not a run directory"),
    ],
)
def test_bad_input_is_one_clear_line(capsys, args, named):
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and named in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU, so device=cuda is valid here")
def test_cuda_without_a_gpu_is_refused(capsys):
    assert main(["run", "device=cuda"]) == 2
    assert "device=cuda but no CUDA GPU is visible" in capsys.readouterr().err


def test_list_names_every_registered_method_and_protocol(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "td3" in out and "reset_switch" in out and "cyclic_mujoco" in out


def test_list_shows_learners_interventions_and_the_learners_each_runs_on(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "learners:      drq, sac, td3" in out
    assert re.search(r"^  redo +td3, drq, sac$", out, re.M) and re.search(r"^  neuromodulated_td3 +td3$", out, re.M)
    assert "hebbian" in out.split("methods:")[1].splitlines()[0]


TINY_RUN = [
    "protocol.size=smoke",
    "protocol.tasks=[InvertedPendulum]",
    "protocol.steps_per_task=60",
    "protocol.cycles=1",
    "protocol.eval_every=60",
    "protocol.warmup_steps=30",
    "protocol.max_episode_steps=20",
    "method.actor_hidden=[16]",
    "method.critic_hidden=[16]",
    "method.batch_size=16",
    "seeds=1",
    "device=cpu",
    "progress=false",
]


def cli(tmp_path, *args: str) -> None:
    command = [sys.executable, "-m", "cyclic_bench.cli", "run", *args, *TINY_RUN]
    result = subprocess.run(command, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]


def test_method_base_runs_an_intervention_on_another_learner_alone_and_in_a_sweep(tmp_path):
    cli(tmp_path, "method=l2_init", "method.base=sac")
    (run,) = (tmp_path / "runs" / "cyclic_mujoco-smoke" / "l2_init-sac").iterdir()
    recorded = OmegaConf.load(run / "config.yaml").method
    assert (recorded.name, recorded.base, recorded.strength) == ("l2_init", "sac", 1e-3) and "init_temperature" in recorded
    cli(tmp_path, "-m", "method=l2_init", "method.base=td3,sac", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    bases = sorted(OmegaConf.load(p).method.base for p in (tmp_path / "sweep").glob("*/config.yaml"))
    assert bases == ["sac", "td3"]
    assert main(["board", "build", str(tmp_path / "sweep"), "--out", str(tmp_path / "board"), "--reps", "20"]) == 0
    readme = (tmp_path / "board" / "README.md").read_text()  # a board comparing learners names each row's
    assert "| rank | method | learner | seeds |" in readme
    assert re.search(r"\| l2_init \| td3 \|", readme) and re.search(r"\| l2_init-sac \| sac \|", readme)
