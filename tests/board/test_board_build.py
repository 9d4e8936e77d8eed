import json
import math
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from board_synthetic import constant, varied
from rliable import library as rly
from rliable import metrics

from cyclic_bench.board import scores as sc
from cyclic_bench.board.build import BoardOptions, board_texts, build_board, collect_entries, compute_board, stored_options
from cyclic_bench.cli import main
from cyclic_bench.errors import ConfigError

OPTIONS = BoardOptions(reps=100)
TASKS = ["Hopper", "HalfCheetah"]  # the smoke stream: 2 cycles of 200 steps per task, evaluations every 100 steps
LEADERBOARDS = Path(__file__).resolve().parents[2] / "leaderboards"
COMMITTED_BOARDS = sorted(p.parent.relative_to(LEADERBOARDS) for p in LEADERBOARDS.glob("*/*/board.json"))


def final_matrix(score, seeds, step=800, tasks=TASKS):
    return np.array([[score(seed, step, task) for task in tasks] for seed in seeds])


def test_board_ranks_with_rliables_iqm_and_intervals_on_the_final_score_matrix(make_run):
    better = varied(0.05)
    board = compute_board(collect_entries([make_run("td3"), make_run("reset", better, method="reset_switch", seeds=4)]), OPTIONS)
    assert [r["label"] for r in board["rows"]] == ["reset_switch", "td3"] and board["baseline"] == "td3"
    td3, reset = board["rows"][1], board["rows"][0]
    x, y = final_matrix(varied(), range(3)), final_matrix(better, range(4))
    np.random.seed(OPTIONS.seed)
    point, interval = rly.get_interval_estimates({"td3": x}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=OPTIONS.reps)
    np.testing.assert_allclose(td3["final"]["IQM"], [point["td3"][0], *interval["td3"][:, 0]], rtol=1e-12)
    assert reset["improvement"][0] == pytest.approx(metrics.probability_of_improvement(y, x))
    assert td3["improvement"] is None and td3["few_seeds"] and td3["seeds"] == 3


def test_continual_metrics_on_hand_made_scores(make_run):
    def score(seed, step, task):
        if task == "Hopper":  # trained in [0, 200) and [400, 600); drops by 0.3 once the last cycle moves on
            return 0.01 * seed + step / 1000 - (0.3 if step > 600 else 0.0)
        return 0.01 * seed + step / 2000

    main = make_run("main", score)
    reference = make_run("ref", constant(0.2), protocol_settings={"tasks": ["Hopper"], "cycles": 1})
    entries = collect_entries([main, reference])
    row = sc.row_from_entry(entries[0])
    seeds = np.arange(3)
    np.testing.assert_allclose(sc.final_scores(row)[:, 0], 0.01 * seeds + 0.8 - 0.3)
    np.testing.assert_allclose(sc.forgetting(row), [[0.6 - 0.5, 0.0]] * 3, atol=1e-12)  # end of Hopper's last visit (600) vs 800
    np.testing.assert_allclose(sc.cycle_gain(row), [[0.6 - 0.2, 0.8 / 2 - 0.4 / 2]] * 3)  # visit ends 200 -> 600, 400 -> 800
    steps = np.arange(0, 801, 100)
    hopper = 0.01 * seeds[:, None] + steps / 1000 - 0.3 * (steps > 600)
    np.testing.assert_allclose(sc.auc_scores(row)[:, 0], np.trapezoid(hopper, steps, axis=1) / 800)
    first_visit_auc = 0.01 * seeds + np.trapezoid([0.0, 0.1, 0.2], [0, 100, 200]) / 200
    np.testing.assert_allclose(sc.forward_transfer(row)[:, 0], (first_visit_auc - 0.2) / (1 - 0.2))
    assert np.isnan(sc.forward_transfer(row)[:, 1]).all()  # no single-task reference for HalfCheetah

    board = compute_board(entries, OPTIONS)
    continual = board["rows"][0]["continual"]
    assert continual["forgetting"][0] == pytest.approx(0.05)  # mean over tasks of (0.1, 0)
    assert continual["forward transfer"][0] == pytest.approx(np.mean((first_visit_auc - 0.2) / 0.8))
    assert continual["cycle gain"][0] == pytest.approx((0.4 + 0.2) / 2)


def test_recovery_time_after_a_perturbation_event(make_run):
    def score(seed, step, task):  # the event at step 300 hits HalfCheetah (trained in [200, 400))
        if task != "HalfCheetah" or step <= 300:
            return 0.5
        return {0: {400: 0.1, 500: 0.46}, 1: {}, 2: {400: 0.5}}[seed].get(step, 0.3 if seed == 1 else 0.5)

    run = make_run("event", score, events=[{"step": 300, "kind": "zero_weights", "fraction": 0.5}])
    row = sc.row_from_entry(collect_entries([run])[0])
    (event,) = sc.recovery(row, tolerance=0.1)
    assert event["task"] == "HalfCheetah" and event["kind"] == "zero_weights"
    np.testing.assert_array_equal(event["recovery_steps"], [200, math.inf, 100])
    (summary,) = compute_board([row.entry], OPTIONS)["rows"][0]["recovery"]
    assert summary["recovered"] == 2 and summary["median_steps"] == 200


def test_held_out_tasks_are_reported_apart_from_the_score_matrix(make_run):
    run = make_run("ant", protocol="ant_morphology", size="smoke")
    board = compute_board(collect_entries([run]), OPTIONS)
    stream, row = board["stream"], board["rows"][0]
    assert stream["held_out_tasks"] == ["short_front_left"] and len(stream["tasks"]) == 2
    trained = final_matrix(varied(), range(3), step=stream["total_steps"], tasks=stream["tasks"])
    assert row["final"]["Mean"][0] == pytest.approx(trained.mean())
    held_out = final_matrix(varied(), range(3), step=stream["total_steps"], tasks=stream["held_out_tasks"])
    assert row["held_out"]["Mean"][0] == pytest.approx(held_out.mean())


def test_failed_seeds_score_zero_from_their_failure_on(make_run):
    row = sc.row_from_entry(collect_entries([make_run("failed", constant(0.5), failures={2: 500})])[0])
    np.testing.assert_array_equal(sc.final_scores(row)[:, 0], [0.5, 0.5, 0.0])
    assert row.score[2, 4, 0] == 0.5 and row.failed_seeds == [2]


def test_identical_inputs_give_identical_boards_from_runs_or_from_entries(make_run, tmp_path):
    runs = [make_run("a"), make_run("b", varied(0.1), method="reset_switch")]
    _, first = build_board(runs, tmp_path / "one", OPTIONS)
    _, second = build_board(runs, tmp_path / "two", OPTIONS)
    _, third = build_board([first / "entries"], tmp_path / "three", OPTIONS)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert {"README.md", "index.html", "board.json", "scores.csv", "plots/aggregates.png", "plots/curves.svg"} <= {str(f) for f in files}
    for other in (second, third):
        assert sorted(p.relative_to(other) for p in other.rglob("*") if p.is_file()) == files
        for name in files:
            assert (first / name).read_bytes() == (other / name).read_bytes(), name
    readme = (first / "README.md").read_text()
    assert "| 1 | reset_switch | 3† |" in readme and "fewer than 30 seeds" in readme and "![" in readme


def test_a_board_holds_one_protocol_configuration(make_run):
    entries = collect_entries([make_run("a"), make_run("b", method="reset_switch", protocol_settings={"eval_every": 200})])
    with pytest.raises(ConfigError, match="different streams"):
        compute_board(entries, OPTIONS)
    with pytest.raises(ConfigError, match="baseline 'nope' is not on the board"):
        compute_board(entries[:1], BoardOptions(reps=100, baseline="nope"))


def test_a_board_can_rank_the_auc_over_the_stream(make_run):
    board = compute_board(collect_entries([make_run("td3")]), BoardOptions(reps=100, score="auc"))
    steps = np.arange(0, 801, 100)
    curves = np.array([[[varied()(seed, step, task) for step in steps] for task in TASKS] for seed in range(3)])
    auc = np.trapezoid(curves, steps, axis=2) / 800
    assert board["rows"][0]["auc"]["IQM"][0] == pytest.approx(metrics.aggregate_iqm(auc))
    with pytest.raises(ConfigError, match="score='best' is not allowed"):
        BoardOptions(score="best")


def test_settings_of_one_method_become_separately_labelled_rows(make_run):
    entries = collect_entries([make_run("a", seeds=1), make_run("b", varied(0.1), seeds=1, method_settings={"lr": 1e-4})])
    assert sorted(e["label"] for e in entries) == ["td3-lr=0.0001", "td3-lr=0.0003"]
    assert [r["label"] for r in compute_board(entries, OPTIONS)["rows"]] == ["td3-lr=0.0001", "td3-lr=0.0003"]


def documented_rebuild_command() -> list[str]:
    """The rebuild command of leaderboards/README.md, as arguments of `cyclic-bench`."""
    (command,) = re.findall(r"```bash\n(cyclic-bench board build [^\n]*)\n```", (LEADERBOARDS / "README.md").read_text())
    return shlex.split(command)[1:]


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_board_folder_rebuilds_byte_for_byte_with_the_documented_command_and_its_stored_settings(make_run, tmp_path, monkeypatch):
    runs = [str(make_run("a")), str(make_run("b", varied(0.1), method="reset_switch"))]
    folder = tmp_path / "leaderboards" / "cyclic_mujoco" / "smoke"
    settings = ["--reps", "60", "--score", "auc", "--baseline", "reset_switch", "--last", "2"]
    assert main(["board", "build", *runs, "--out", str(folder), *settings]) == 0
    built = files_of(folder)
    shutil.rmtree(folder / "plots")
    (folder / "README.md").write_text("stale")
    monkeypatch.chdir(tmp_path)
    command = [arg.replace("<protocol>", "cyclic_mujoco").replace("<size>", "smoke") for arg in documented_rebuild_command()]
    assert main(command) == 0
    assert files_of(folder) == built
    stored = stored_options(folder)
    assert (stored["reps"], stored["score"], stored["baseline"], stored["last"]) == (60, "auc", "reset_switch", 2)

    # a setting given explicitly wins over the stored one, and is stored in its place
    assert main(["board", "build", str(folder), "--score", "final"]) == 0
    assert stored_options(folder)["score"] == "final" and stored_options(folder)["baseline"] == "reset_switch"
    readme = (folder / "README.md").read_text()
    assert "(--reps 60 --last 2 --baseline reset_switch)" in readme


def test_a_stored_baseline_that_left_the_board_is_refused_in_one_line(make_run, tmp_path):
    folder = tmp_path / "board"
    build_board([make_run("a"), make_run("b", varied(0.1), method="reset_switch")], folder, {"reps": 20, "baseline": "reset_switch"})
    with pytest.raises(ConfigError, match="sets baseline 'reset_switch', which is not among the entries; give --baseline"):
        build_board([folder / "entries" / "td3.json"], folder)


@pytest.mark.slow
@pytest.mark.parametrize("name", [str(b) for b in COMMITTED_BOARDS])
def test_every_committed_board_is_what_its_folder_rebuilds(name):
    """Numbers and pages: the plots (byte-identical too on the machine that built them) are not redrawn here."""
    folder = LEADERBOARDS / name
    entries = collect_entries([folder])
    board = compute_board(entries, BoardOptions(**stored_options(folder)))
    board["plots"] = json.loads((folder / "board.json").read_text())["plots"]
    for path, text in board_texts(board, entries).items():
        assert (folder / path).read_text() == text, f"{name}/{path} is not what `cyclic-bench board build {name}` writes"
    assert all((folder / png).is_file() and (folder / png).with_suffix(".svg").is_file() for png in board["plots"].values())
    assert sorted(p.name for p in (folder / "entries").glob("*.json")) == sorted(f"{e['label']}.json" for e in entries)


def test_committed_boards_include_both_the_bandit_and_the_smoke_board():
    assert {"bandit/full", "cyclic_mujoco/smoke"} <= set(map(str, COMMITTED_BOARDS))
