import pytest
from fault_helpers import RUN_ARGS, run_in_process, tables


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """The tables of the small run uninterrupted: what every interrupted, resumed or refused run must end with."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    assert run_in_process("run", *RUN_ARGS, f"hydra.run.dir={run_dir}") == 0
    return run_dir, tables(run_dir)
