"""Fixtures shared by the test files."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture
def quiet_recipe_logger():
    """Keep the recipe's log lines out of pytest's captured output."""
    logger = logging.getLogger("labelrefine.recipes.calr")
    logger.propagate = False
    yield
    logger.propagate = True
