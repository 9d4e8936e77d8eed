"""CONTRIBUTING.md's worked example intervention is the suite's own L2 Init, word for word, and it is registered."""

import re
from pathlib import Path

from cyclic_bench.registry import get_method, learners_of

ROOT = Path(__file__).resolve().parents[2]


def test_the_worked_example_is_the_l2_init_intervention_file_and_runs_on_every_learner():
    (example,) = re.findall(r"```python\n(.*?)```", (ROOT / "CONTRIBUTING.md").read_text(), flags=re.S)
    assert example == (ROOT / "methods" / "interventions" / "l2_init.py").read_text()
    assert learners_of("l2_init") == ["td3", "sac"]
    method_cls, config_cls = get_method("l2_init", "sac")
    assert config_cls().strength == 1e-3 and method_cls.Intervention.__name__ == "L2Init"
