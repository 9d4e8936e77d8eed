import json

import numpy as np
import pytest
from board_synthetic import constant, run_config, varied
from omegaconf import OmegaConf

from cyclic_bench.board.entry import dumps_entry, entry_from_runs, group_runs, load_entry, stream_of, write_entry
from cyclic_bench.errors import ConfigError


def one_entry(paths, label=None):
    groups = group_runs(paths)
    assert len(groups) == 1
    return entry_from_runs(*groups[0], label=label)


def test_shards_merge_and_a_submission_round_trips(make_run, tmp_path):
    shards = [make_run(f"shard{i}", first_seed=first, seeds=3) for i, first in enumerate((3, 0))]
    entry = one_entry(shards)
    assert entry["seeds"] == [0, 1, 2, 3, 4, 5]
    assert [s["seeds"] for s in entry["shards"]] == [[0, 1, 2], [3, 4, 5]]
    assert entry["stream"]["tasks"] == ["Hopper", "HalfCheetah"] and entry["evaluations"]["steps"] == list(range(0, 801, 100))
    score = np.array(entry["evaluations"]["score"])
    assert score.shape == (6, 9, 2)
    assert score[4, 8, 0] == pytest.approx(varied()(4, 800, "Hopper"))
    path = write_entry(tmp_path / "entry.json", entry)
    assert load_entry(path) == entry
    assert path.read_text() == dumps_entry(load_entry(path))

    single = one_entry([make_run("single", seeds=6)])
    assert single["evaluations"] == entry["evaluations"]  # 2 shards x 3 seeds == one run of 6 seeds


def test_overlapping_shards_and_mismatching_configurations_are_refused(make_run):
    a, b = make_run("a", seeds=3), make_run("b", first_seed=2, seeds=3)
    with pytest.raises(ConfigError, match="seed 2 is in both"):
        one_entry([a, b])
    c = make_run("c", first_seed=3, method_settings={"lr": 1e-4})
    groups = group_runs([a, c])
    assert len(groups) == 2  # another learning rate is another row, never a shard
    with pytest.raises(ConfigError, match="their configurations differ in method.lr"):
        entry_from_runs([groups[0][0][0], groups[1][0][0]])


def test_unfinished_runs_and_non_runs_are_refused(make_run, tmp_path):
    with pytest.raises(ConfigError, match="unfinished run"):
        group_runs([make_run("killed", finished=False)])
    with pytest.raises(ConfigError, match="is not a run directory"):
        group_runs([tmp_path])


def test_single_task_runs_become_references_for_forward_transfer(make_run):
    main = make_run("main")
    ref = make_run("ref", constant(0.2), protocol_settings={"tasks": ["Hopper"], "cycles": 1})
    groups = group_runs([main, ref])
    assert len(groups) == 1 and [r.path for r in groups[0][1]] == [ref]
    entry = entry_from_runs(*groups[0])
    assert list(entry["reference"]) == ["Hopper"]
    assert np.allclose(entry["reference"]["Hopper"]["score"], 0.2)


def test_failed_seeds_have_nulls_only_after_their_failure(make_run, tmp_path):
    entry = one_entry([make_run("failed", failures={1: 300})])
    assert entry["failures"] == [{"seed": 1, "step": 300, "reason": "non-finite parameters"}]
    assert entry["evaluations"]["score"][1][3] == [None, None] and entry["evaluations"]["score"][1][2][0] is not None
    entry["failures"] = []
    path = tmp_path / "bad.json"
    path.write_text(dumps_entry(entry))
    with pytest.raises(ConfigError, match="missing, but the seed had not failed"):
        load_entry(path)


def _mutate(entry: dict, how: str) -> str:
    """Apply one corruption to an entry; returns its JSON text."""
    if how == "unknown field":
        entry["extra"] = 1
    elif how == "missing field":
        del entry["seeds"]
    elif how == "wrong type":
        entry["seeds"] = "0,1,2"
    elif how == "duplicated seeds":
        entry["seeds"] = [0, 0, 1]
    elif how == "wrong task set":
        entry["evaluations"]["tasks"] = ["Hopper", "Walker2d"]
    elif how == "score out of range":
        entry["evaluations"]["score"][0][1][0] = 1e6
    elif how == "score disagrees with its return":
        entry["evaluations"]["score"][0][1][0] += 0.5
    elif how == "stream differs from config":
        entry["stream"]["cycles"] = 3
    elif how == "missing evaluation":
        entry["evaluations"]["steps"] = entry["evaluations"]["steps"][:-1]
    elif how == "bad label":
        entry["label"] = "<script>"
    elif how == "events disagree":
        entry["events"] = [{"step": 100, "kind": "zero_weights", "task": "Hopper", "detail": ""}]
    elif how == "unknown protocol":
        entry["protocol"] = entry["config"]["protocol"]["name"] = "nope"
    elif how == "bad diagnostic name":
        entry["diagnostics"]["names"][0] = "x<y>"
    elif how == "format":
        entry["format"] = "pickle"
    text = dumps_entry(entry)
    if how == "nan":
        text = text.replace(str(entry["evaluations"]["score"][0][0][0]), "NaN", 1)
    return text


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("unknown field", "unknown fields extra"),
        ("missing field", "lacks seeds"),
        ("wrong type", "seeds must be a list"),
        ("duplicated seeds", "seeds repeats [0]"),
        ("wrong task set", "the protocol evaluates ['Hopper', 'HalfCheetah']"),
        ("score out of range", "outside [-100, 100]"),
        ("score disagrees with its return", "but the protocol normalises its return"),
        ("stream differs from config", "stream.cycles is 3, but the entry's configuration gives 2"),
        ("missing evaluation", "evaluations.steps must be 0, 100, ..., 800"),
        ("bad label", "label '<script>' is not allowed"),
        ("events disagree", "but the entry's configuration schedules []"),
        ("unknown protocol", "protocol='nope' is not a known protocol"),
        ("bad diagnostic name", "diagnostics.names[0]"),
        ("format", "format is 'pickle'"),
        ("nan", "NaN is not allowed"),
    ],
)
def test_malformed_or_inconsistent_entries_are_refused_in_one_line(make_run, tmp_path, how, message):
    entry = one_entry([make_run("run")])
    path = tmp_path / "bad.json"
    path.write_text(_mutate(json.loads(dumps_entry(entry)), how))
    with pytest.raises(ConfigError) as error:
        load_entry(path)
    text = str(error.value)
    assert "\n" not in text and text.startswith(f"entry {path}") and message in text, text


def test_files_that_are_not_entries_are_refused(tmp_path):
    pickled = tmp_path / "entry.json"
    pickled.write_bytes(b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94.")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        load_entry(pickled)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="the entry must be an object"):
        load_entry(listing)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_entry(deep)


def test_window_scored_streams_re_derive_scores_from_the_online_table(tmp_path):
    """A bandit-like run: scores come from the online table (the protocol's online_score), never from step 0."""
    config = run_config(method="ucb", protocol="bandit", seeds=2)
    stream = stream_of(config)
    assert stream.eval_episodes == 0
    run = tmp_path / "bandit"
    run.mkdir()
    (run / "config.yaml").write_text(OmegaConf.to_yaml(config))
    (run / "summary.json").write_text("{}")
    evaluations = ["seed,step,cycle,trained_task,eval_task,return,return_std,score"]
    online = ["seed,step,cycle,trained_task,name,value"]
    for seed in (0, 1):
        for step in range(stream.eval_every, stream.total_steps + 1, stream.eval_every):
            chosen, uniform, oracle = 1.0 + seed + step / 100, 0.0, 4.0
            score = (chosen - uniform) / (oracle - uniform)
            evaluations.append(f"{seed},{step},0,bandit,bandit,{chosen},nan,{score}")
            online += [
                f"{seed},{step},0,bandit,{name},{value}" for name, value in (("chosen", chosen), ("uniform", uniform), ("oracle", oracle))
            ]
    (run / "evaluations.csv").write_text("\n".join(evaluations) + "\n")
    (run / "online.csv").write_text("\n".join(online) + "\n")
    entry = one_entry([run])
    assert entry["evaluations"]["steps"][0] == stream.eval_every
    entry["evaluations"]["score"][1][2][0] += 0.1
    path = tmp_path / "tampered.json"
    path.write_text(dumps_entry(entry))
    with pytest.raises(ConfigError, match="but its online values give"):
        load_entry(path)
