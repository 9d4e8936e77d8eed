"""Every bad input ends with exit code 2 and one line naming the value, and leaves nothing behind.

Most cases run in this process through `cyclic_bench.cli.main` (a child process costs seconds); a few run as the real
command, to show what a user sees: no traceback, one line, no folder.
"""

import subprocess
import sys

import pytest
from fault_helpers import one_line

from cyclic_bench.cli import main

BASE = ["run", "protocol.size=smoke", "progress=false"]
BANDIT = ["protocol=bandit", "method=epsilon_greedy"]
BAD_INPUTS = [  # (overrides, what the line must name)
    (["seeds=0"], "seeds=0 is not allowed: it must be an integer >= 1"),
    (["seeds=-2"], "seeds=-2"),
    (["seeds=abc"], "seeds=abc is not allowed: it must be an integer"),
    (["seeds=2.5"], "seeds=2.5 is not allowed: it must be an integer"),
    (["first_seed=-1"], "first_seed=-1"),
    (["env_workers=-1"], "env_workers=-1"),
    (["checkpoint_every=-5"], "checkpoint_every=-5"),
    (["progress=maybe"], "progress=maybe is not allowed: it must be true or false"),
    (["device=tpu"], "device='tpu' is not allowed; allowed: auto, cpu, cuda"),
    (["capture=maybe"], "capture=maybe is not allowed: it must be true or false"),
    (["seed=3"], "seed is not a setting; allowed: capture, checkpoint_every, device, env_workers, events, first_seed, method,"),
    (["+seed=3"], "seed is not a setting; allowed:"),
    (["first_seed=0,10"], "first_seed=0,10 gives several values: run a sweep with -m"),
    (["method.actor_hidden=[1,"], "method.actor_hidden=[1, cannot be read"),
    (["method=nope"], "method='nope' is not a known method; known: "),
    (["protocol=nope"], "protocol='nope' is not a known protocol; known: "),
    (
        ["method.lrr=1e-3"],
        "method.lrr is not a setting of method td3; allowed: activation, actor_hidden, actor_layer_norm, base, batch_size,",
    ),
    (["protocol.nope=1"], "protocol.nope is not a setting of protocol cyclic_mujoco; allowed: boundaries_visible,"),
    (["method.batch_size=0"], "method.batch_size=0 is not allowed: it must be an integer >= 1"),
    (["method.actor_hidden=[0]"], "method.actor_hidden=[0] is not allowed: it must be a non-empty list of integers > 0"),
    (["method.critic_hidden=[]"], "method.critic_hidden=[] is not allowed"),
    (["method.actor_hidden=abc"], "method.actor_hidden=abc is not allowed: it must be a list of integers"),
    (["method.lr=-1"], "method.lr=-1"),
    (["method.lr=nan"], "method.lr=nan is not allowed: it must be a finite number > 0"),
    (["method.lr=inf"], "method.lr=inf"),
    (["method.gamma=1.5"], "method.gamma=1.5 is not allowed: it must be a number in [0, 1]"),
    (["method.tau=0"], "method.tau=0"),
    (["method.policy_delay=0"], "method.policy_delay=0"),
    (["method.buffer_size=10"], "method.buffer_size=10 is not allowed: it must be >= method.batch_size=256"),
    (["method.actor_layer_norm=[5]"], "method.actor_layer_norm=[5] is not allowed: it must be a list of hidden-layer indices in 0..1"),
    (["protocol.size=huge"], "protocol.size='huge' is not a size of cyclic_mujoco; allowed: smoke, demo, lite, full"),
    (["protocol.tasks=[Nope]"], "task 'Nope' is not a cyclic_mujoco task; allowed: "),
    (["protocol.steps_per_task=0"], "steps_per_task=0"),
    (["protocol.cycles=abc"], "protocol.cycles=abc is not allowed: it must be an integer or null"),
    (["protocol.eval_every=7"], "eval_every=7 is not allowed: it must divide steps_per_task=200"),
    (["protocol.max_episode_steps=0"], "max_episode_steps=0"),
    (["events=5"], "events=5 is not allowed: it must be a list"),
    (["events=[{step: 0, kind: zero_weights, fraction: 0.5}]"], "event step=0 is outside the stream"),
    (["events=[{step: 100, kind: explode}]"], "event kind='explode' is not allowed; allowed: zero_weights, dynamics"),
    (["events=[{step: 100, kind: zero_weights, fraction: 2}]"], "event fraction=2"),
    (["events=[{step: 100, kind: dynamics, quantity: colour}]"], "event quantity='colour'"),
    (["events=[{step: 100, kind: zero_weights, size: 2}]"], "an event has no setting size"),
    (["method=ne", "method.initial_density=0"], "method.initial_density=0"),
    (["method=hebbian", "method.population=3"], "method.population=3 is not allowed: it must be even"),
    (["method=hebbian", "method.population=64"], "it must be a multiple of the method's 64 environments per seed"),
    (["method=hebbian", "method.hidden=[]"], "method.hidden=[] is not allowed"),
    ([*BANDIT, "method.epsilon=2"], "method.epsilon=2"),
    ([*BANDIT, "protocol.switch_probability=2"], "switch_probability=2"),
    (["protocol=bandit", "method=achna", "method.n_ensemble=1"], "method.n_ensemble=1"),
    (["protocol=bandit", "method=td3"], "method='td3' cannot play bandit-smoke"),
    (["resume=nowhere"], "resume='nowhere' is not a run directory"),
]


@pytest.mark.parametrize(("overrides", "named"), BAD_INPUTS, ids=[" ".join(o) for o, _ in BAD_INPUTS])
def test_a_bad_input_is_one_line_exit_code_2_and_leaves_nothing(tmp_path, monkeypatch, capsys, overrides, named):
    monkeypatch.chdir(tmp_path)  # the default runs/ folder would appear here
    assert main([*BASE, *overrides, f"hydra.run.dir={tmp_path / 'run'}"]) == 2
    out, err = capsys.readouterr()
    assert named in one_line(err), err
    assert out == ""
    assert list(tmp_path.iterdir()) == []


def test_there_are_at_least_30_bad_inputs():
    assert len(BAD_INPUTS) >= 30


@pytest.mark.parametrize("overrides", [["seeds=abc"], ["method.batch_size=0"], ["method.actor_hidden=[0]"]])
def test_the_real_command_prints_one_line_and_no_traceback(tmp_path, overrides):
    command = [sys.executable, "-m", "cyclic_bench.cli", *BASE, *overrides]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert overrides[0] in one_line(done.stderr)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("sweep", "named"),
    [
        (["seeds=1,0"], "seeds=0 is not allowed"),
        (["method=hebbian", "method.population=10,64"], "it must be a multiple of the method's 64 environments per seed"),
    ],
)
def test_a_bad_job_of_a_sweep_is_refused_before_hydra_starts_any(tmp_path, monkeypatch, capsys, sweep, named):
    monkeypatch.chdir(tmp_path)  # hydra's sweep folder would appear here
    assert main(["run", "-m", "protocol.size=smoke", "progress=false", *sweep]) == 2
    assert named in one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []
