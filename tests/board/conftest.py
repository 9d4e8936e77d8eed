import pytest
from board_synthetic import varied, write_run


@pytest.fixture
def make_run(tmp_path):
    """make_run(name, score, **settings) -> a synthetic finished run directory under tmp_path."""

    def make(name: str, score=None, **settings):
        return write_run(tmp_path / name, score or varied(), **settings)

    return make
