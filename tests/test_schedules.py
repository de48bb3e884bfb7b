"""Decay schedules against their closed forms, bounds and bad options."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelrefine.schedules import SCHEDULES, constant, cosine, exponential, get_schedule, linear, polynomial


def test_closed_forms():
    assert constant(10, 50, start=0.7) == 0.7
    assert linear(10, 50) == pytest.approx(0.8)
    assert linear(10, 50, start=0.9, end=0.1) == pytest.approx(0.9 - 0.8 * 0.2)
    assert polynomial(10, 50, power=3) == pytest.approx(0.8**3)
    assert exponential(0, 50) == 1.0
    assert exponential(50, 50) == pytest.approx(0.0, abs=1e-12)
    assert cosine(0, 50) == 1.0
    assert cosine(50, 50) == pytest.approx(0.0, abs=1e-12)


def test_authors_cosine():
    for epoch in range(50):
        assert cosine(epoch, 50, span=3.0) == pytest.approx(0.5 * (1 + math.cos(math.pi * epoch / (3 * 50))))


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from(sorted(SCHEDULES)),
    st.integers(1, 200),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_values_in_unit_interval_start_first_and_monotone(name, total, start, end):
    schedule = get_schedule(name, start=start, end=end)
    values = [schedule(epoch, total) for epoch in range(total + 5)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert values[0] == pytest.approx(start)
    steps = [b - a for a, b in itertools.pairwise(values)]
    direction = 1 if end >= start else -1
    assert all(direction * s >= -1e-12 for s in steps), "schedules move monotonically from start to end"


def test_progress_is_clipped_past_the_end():
    assert linear(80, 50) == linear(50, 50) == 0.0


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: linear(-1, 10), ValueError, r"epoch must be in \[0, inf\], got -1"),
        (lambda: linear(1, 0), ValueError, r"total_epochs must be in \[1, inf\], got 0"),
        (lambda: linear(1.5, 10), TypeError, "epoch must be an integer"),
        (lambda: linear(1, 10, start=2.0), ValueError, r"start must be in \[0, 1\], got 2.0"),
        (lambda: cosine(1, 10, span=0), ValueError, r"span must be in \(0, inf\), got 0"),
        (lambda: polynomial(1, 10, power=-1), ValueError, r"power must be in \(0, inf\), got -1"),
        (lambda: exponential(1, 10, rate=0), ValueError, r"rate must be in \(0, inf\), got 0"),
        (lambda: get_schedule("step"), ValueError, "name must be one of 'constant', .*; got 'step'"),
        (lambda: get_schedule("linear", end=-0.5), ValueError, r"end must be in \[0, 1\], got -0.5"),
    ],
)
def test_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()
