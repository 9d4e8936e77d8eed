import pytest
import torch

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
