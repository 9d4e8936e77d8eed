"""Fixtures for every test (helpers to import live in helpers.py: a conftest module name is not unique)."""

import pytest
import torch


@pytest.fixture
def cpu_threads():
    """Pin torch to one thread so float results do not depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
