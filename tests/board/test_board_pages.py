"""What a board page says before and beside its numbers: whether its size can rank anything, what every task's 0 and 1
are, whether its rows ran the same code, the median only where it can differ from the mean, and a bandit board in a
bandit's words."""

from pathlib import Path

import pytest
from board_synthetic import constant
from cyclic_bench.protocols.cyclic_mujoco import RANDOM_RETURNS, TASKS

from cyclic_bench.board import render
from cyclic_bench.board.build import BoardOptions, build_board, collect_entries, compute_board, stored_options

OPTIONS = BoardOptions(reps=50)
BANDIT_BOARD = Path(__file__).resolve().parents[2] / "leaderboards" / "bandit" / "full"


def page(make_run, runs: list[dict]) -> str:
    """The Markdown page of a board of synthetic runs, one per dict of `make_run` settings (no plots drawn)."""
    board = compute_board(collect_entries([make_run(f"run{i}", **settings) for i, settings in enumerate(runs)]), OPTIONS)
    return render.markdown(board | {"plots": {}})


def test_a_plumbing_size_says_at_its_top_that_it_is_not_a_result(make_run, tmp_path):
    _, out = build_board([make_run("a")], tmp_path / "board", OPTIONS)
    title, first = (out / "README.md").read_text().split("\n\n")[:2]
    assert title == "# cyclic_mujoco leaderboard, size smoke"
    assert first.startswith("> **Not a result: size smoke is a plumbing check")
    body = (out / "index.html").read_text().split("<body>")[1]
    assert body.index('<p class="warn">Not a result') < body.index("<p>Stream")
    lite = page(make_run, [dict(score=constant(0.5), size="lite", seeds=2)])
    assert "Not a result" not in lite


def test_every_task_states_the_returns_that_score_0_and_1_at_the_episode_length_played(make_run):
    board = compute_board(collect_entries([make_run("a")]), OPTIONS)
    hopper = board["normalization"]["Hopper"]
    assert hopper["random_return"] == RANDOM_RETURNS["Hopper"][50][0]  # the smoke size plays 50-step episodes
    assert hopper["reference_return"] == pytest.approx(TASKS["Hopper"].reference_return * 50 / 1000)
    text = render.markdown(board | {"plots": {}})
    assert "## Normalisation" in text and "measured over 100 episodes of 50 steps" in text
    assert "0 = a random policy's return, 1 = the reference return, at the episode length played" in text


def test_rows_run_at_different_or_uncommitted_code_are_flagged(make_run):
    same = page(make_run, [dict(code_revision="1" * 40), dict(method="reset_switch", code_revision="1" * 40)])
    assert "Mixed code" not in same and "| 11111111 |" in same
    mixed = page(make_run, [dict(code_revision="1" * 40), dict(method="reset_switch", code_revision="2" * 40 + "+dirty")])
    assert "Mixed code: the rows were run at 2 code revisions (11111111, 22222222+dirty" in mixed
    assert "Uncommitted code" in mixed and "| 22222222+dirty |" in mixed


def test_the_median_is_shown_only_where_it_can_differ_from_the_mean(make_run):
    two = page(make_run, [{}])
    assert "| Median |" not in two and "Median not shown" in two
    three = page(make_run, [dict(protocol_settings={"tasks": ["Hopper", "HalfCheetah", "Walker2d"]})])
    assert "| IQM | Median | Mean |" in three and "Median not shown" not in three


def test_a_bandit_board_speaks_of_training_windows_and_the_oracle_arm():
    options = BoardOptions(**(stored_options(BANDIT_BOARD) | {"reps": 20}))
    text = render.markdown(compute_board(collect_entries([BANDIT_BOARD]), options) | {"plots": {}})
    assert "scored on every 500-step training window (no separate evaluation episodes)" in text and "0 episode" not in text
    assert "1 = the oracle arm" in text and "0 = a uniformly random arm" in text and "protocol's reference" not in text
    assert "| forgetting |" not in text and "One task visited once" in text  # 0 by construction on one task visited once
    assert "Plasticity diagnostics" not in text and "## Method diagnostics" in text and "dormant ratio" not in text
