"""The sort-based set helpers equal numpy's own."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from labelrefine._arrays import dense_codes, is_member, unique_sorted

integers = arrays(np.int64, st.integers(0, 60), elements=st.integers(-5, 2**62))


@given(integers)
def test_unique_sorted_equals_numpy(values):
    np.testing.assert_array_equal(unique_sorted(values), np.unique(values))


@given(integers, integers)
def test_is_member_equals_isin(values, members):
    np.testing.assert_array_equal(is_member(values, members), np.isin(values, members))


@given(integers)
def test_dense_codes_equal_numpy_inverse(values):
    np.testing.assert_array_equal(dense_codes(values), np.unique(values, return_inverse=True)[1].reshape(-1))
