"""Every registered method plays the smoke cyclic MuJoCo stream end to end."""

import json
import math

import pytest

from cyclic_bench.cli import compose_config
from cyclic_bench.errors import ConfigError
from cyclic_bench.registry import get_method, method_names
from cyclic_bench.run import train


@pytest.mark.parametrize("name", method_names())
def test_every_method_runs_the_smoke_stream(tmp_path, name):
    summary = train(compose_config([f"method={name}", "protocol.size=smoke", "seeds=2", "progress=false"]), tmp_path)
    assert summary["method"] == name and summary["failed_seeds"] == []
    assert set(summary["final_scores"]) == {"Hopper", "HalfCheetah"}
    assert all(math.isfinite(v) for scores in summary["final_scores"].values() for v in scores.values())
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_an_unknown_method_lists_the_known_ones():
    with pytest.raises(ConfigError, match="known: " + ", ".join(method_names())):
        get_method("nope")
