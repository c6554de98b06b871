"""Shared fixtures: every test gets its own seeded Generator; warnings are errors (pyproject)."""

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261123)
