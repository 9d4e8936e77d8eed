"""The board commands end to end on a real tiny run (TD3, smoke stream, 2 seeds), and the quick start's board."""

import json

import pytest
import torch

from cyclic_bench.board.entry import load_entry
from cyclic_bench.cli import compose_config, main
from cyclic_bench.run import train

SMALL_NETWORKS = ["method.actor_hidden=[32,32]", "method.critic_hidden=[32,32]"]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # float results must not depend on the thread count, for the exact re-run below
    config = compose_config(["method=td3", "protocol.size=smoke", "seeds=2", "device=cpu", "progress=false", *SMALL_NETWORKS])
    path = tmp_path_factory.mktemp("real") / "td3"
    train(config, path)
    yield path
    torch.set_num_threads(threads)


def test_submit_build_and_reproduce_a_real_run(real_run, tmp_path, capsys):
    entry = tmp_path / "entries" / "td3.json"
    assert main(["board", "submit", str(real_run), "--out", str(entry)]) == 0
    assert f"written to {entry}" in capsys.readouterr().out
    data = load_entry(entry)
    assert data["seeds"] == [0, 1] and data["shards"][0]["device"] == "cpu" and data["config"]["method"]["actor_hidden"] == [32, 32]

    assert main(["board", "build", str(entry.parent), "--out", str(tmp_path / "board"), "--reps", "50"]) == 0
    out = capsys.readouterr().out
    assert "td3" in out and "IQM final score" in out and (tmp_path / "board" / "index.html").is_file()

    again = tmp_path / "again"
    assert main(["board", "reproduce", str(entry), "--seeds", "2", "--out", str(again), "--device", "cpu", "--reps", "50"]) == 0
    out = capsys.readouterr().out
    assert "verdict: exact" in out, out
    report = json.loads((again / "reproduction.json").read_text())
    assert report["exact"] and report["max_score_difference"] == 0.0 and all(c["inside"] for c in report["interval_checks"])


def test_quickstart_ends_with_a_small_board(tmp_path, capsys):
    assert main(["quickstart", "--seeds", "2", "--size", "smoke", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    (board,) = tmp_path.glob("*/board")
    assert "leaderboard of these runs" in out and "td3" in out and "reset_switch" in out and "[" in out
    assert "What you are looking at" in out and "Hopper: 0 = return 16.7: uniform random actions" in out
    table = out[out.index("method         task") :].splitlines()
    assert table[0].split() == ["method", "task", "learned", "kept"] and [line.split()[:2] for line in table[1:5]] == [
        ["td3", "Hopper"],
        ["td3", "HalfCheetah"],
        ["reset_switch", "Hopper"],
        ["reset_switch", "HalfCheetah"],
    ]
    assert f"board: {(board / 'README.md').resolve()}" in out and "plots:" in out and (board / "plots" / "aggregates.png").is_file()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["build", "/nonexistent/run"], "/nonexistent/run does not exist"),
        (["reproduce", "/nonexistent/entry.json"], "entry /nonexistent/entry.json does not exist"),
        (["build", "RUN", "--reps", "5"], "reps=5 is not allowed"),
        (["reproduce", "ENTRY", "--seeds", "9"], "--seeds 9 is not allowed: the entry has 2 seeds"),
        (["submit", "RUN", "OTHER"], "submit takes one configuration's runs"),
    ],
)
def test_board_commands_report_bad_input_in_one_line(make_run, tmp_path, capsys, args, named):
    run, other = make_run("run", seeds=2), make_run("other", method="reset_switch")
    entry = tmp_path / "entry.json"
    assert main(["board", "submit", str(run), "--out", str(entry)]) == 0
    capsys.readouterr()
    replace = {"RUN": str(run), "OTHER": str(other), "ENTRY": str(entry)}
    assert main(["board", *(replace.get(a, a) for a in args)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and named in err, err
