"""One writer per run folder: a second one is refused in one line naming the folder and the holder, and writes nothing."""

import time

from fault_helpers import RUN_ARGS, one_line, run_in_process, start_child, tables

from cyclic_bench.results import RunDir


def test_a_second_writer_is_refused_while_the_first_runs_and_the_rows_are_not_doubled(tmp_path, reference, capsys):
    _, expected = reference
    run_dir, marker = tmp_path / "run", tmp_path / "marker"
    first = start_child("pause_at_step", 150, marker, "run", *RUN_ARGS, f"hydra.run.dir={run_dir}")  # after its first checkpoint
    deadline = time.time() + 300
    while not marker.with_suffix(".paused").exists():
        assert first.poll() is None and time.time() < deadline, first.stderr.read()
        time.sleep(0.05)
    before = tables(run_dir)
    for second in (["run", *RUN_ARGS, f"hydra.run.dir={run_dir}"], ["run", f"resume={run_dir}"]):
        assert run_in_process(*second) == 2
        line = one_line(capsys.readouterr().err)
        assert f"run folder {run_dir} is being written by another process (pid {first.pid})" in line
        assert tables(run_dir) == before
    marker.with_suffix(".go").touch()
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert tables(run_dir) == expected


def test_the_lock_is_exclusive_within_one_process_too_and_released_after(tmp_path, capsys):
    folder = RunDir(tmp_path / "run")
    with folder.writer_lock():
        assert run_in_process("run", *RUN_ARGS, f"hydra.run.dir={folder.path}") == 2
        assert "is being written by another process" in one_line(capsys.readouterr().err)
        assert sorted(p.name for p in folder.path.iterdir()) == [".lock"]  # nothing else was written
    with folder.writer_lock():  # released when the holder let go
        pass
