"""Fixtures shared by the test files."""

from __future__ import annotations

import importlib.util
import logging

import pytest

MARKERS = (
    "requires(*modules): skip the test when an optional module (infomap, faiss, torch) is not installed",
    "cuda: needs a CUDA device, skipped without one (benchmarks/gpu_check.sh runs them: pytest -m cuda)",
    "slow: takes more than about a second (trainings, process spawns, the docs build); the quick run is "
    "pytest -m 'not slow'",
)


def pytest_configure(config):
    # here rather than in pyproject.toml: .ci/run's core job runs a copy of tests/ outside the checkout
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)


def pytest_runtest_setup(item):
    for mark in item.iter_markers("requires"):
        missing = [m for m in mark.args if importlib.util.find_spec(m) is None]
        if missing:
            pytest.skip(f"needs the optional module(s) {', '.join(missing)}")


@pytest.fixture
def quiet_recipe_logger():
    """Keep the recipe's log lines out of pytest's captured output."""
    logger = logging.getLogger("labelrefine.recipes.calr")
    logger.propagate = False
    yield
    logger.propagate = True
