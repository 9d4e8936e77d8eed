"""A run SIGKILLed anywhere (mid-step, mid-checkpoint write, mid-row) resumes to exactly the rows of an uninterrupted run."""

import random
import signal

from fault_helpers import RUN_ARGS, run_in_process, start_child, tables

from cyclic_bench.results import LOCK_FILE


def kill(fault, n, marker, *args):
    child = start_child(fault, n, marker, *args)
    _, err = child.communicate(timeout=300)
    assert child.returncode == -signal.SIGKILL, f"{fault} {n}: the child was not killed (exit {child.returncode}): {err}"
    return child.pid


def temporary_files(run_dir):
    return sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".") and p.name != LOCK_FILE)


def test_kills_at_random_points_resume_row_for_row(tmp_path, reference):
    _, expected = reference
    rng = random.Random(16)  # the kill points are random, and the same in every CI run
    run_dir, marker = tmp_path / "run", tmp_path / "marker"
    first = rng.randrange(1, 200)  # before or after the first checkpoint (step 100)
    kill("kill_at_step", first, marker, "run", *RUN_ARGS, f"hydra.run.dir={run_dir}")

    # resumed, then killed halfway through its second checkpoint write: that write's temporary file stays behind
    pid = kill("kill_in_checkpoint", 2, marker, "run", f"resume={run_dir}")
    assert (run_dir / LOCK_FILE).read_text().strip() == str(pid)  # the killed writer's lock, left in place
    assert [name.split(".")[1] for name in temporary_files(run_dir)] == ["checkpoint"]
    cut_short = (first // 100 + 2) * 100  # the step of that checkpoint: the last good one is 100 steps earlier

    # resumed (the stale lock taken over, the partial checkpoint removed), then killed in the middle of a table row
    kill("kill_in_append", 2, marker, "run", f"resume={run_dir}")
    assert temporary_files(run_dir) == []
    kill("kill_at_step", rng.randrange(cut_short, 400), marker, "run", f"resume={run_dir}")

    assert run_in_process("run", f"resume={run_dir}") == 0
    assert tables(run_dir) == expected
    assert temporary_files(run_dir) == []
