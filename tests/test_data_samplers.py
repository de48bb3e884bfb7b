"""PKSampler and InfiniteLoader: batch structure, camera diversity and rank disjointness, checked by loops."""

from __future__ import annotations

import sys
import types
from collections import Counter
from itertools import islice

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelrefine.data import InfiniteLoader, PKSampler


def random_population(seed: int, n: int = 300, n_ids: int = 40, n_cams: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pids = rng.integers(-1, n_ids, n)  # -1 = unclustered
    cams = rng.integers(0, n_cams, n)
    return pids, cams


def check_batches(batches: np.ndarray, pids: np.ndarray, cams: np.ndarray, p: int, k: int) -> None:
    """Loop over every identity block of every batch and check the sampler's promises."""
    pids, cams = np.asarray(pids), np.asarray(cams)
    members: dict[int, list[int]] = {}
    for i in range(len(pids)):
        if pids[i] != -1:
            members.setdefault(int(pids[i]), []).append(i)
    for batch in batches:
        assert len(batch) == p * k
        block_ids = []
        for b in range(p):
            block = [int(j) for j in batch[b * k : (b + 1) * k]]
            ids = {int(pids[j]) for j in block}
            assert len(ids) == 1  # K consecutive instances of one identity
            pid = ids.pop()
            assert pid != -1
            block_ids.append(pid)
            available = Counter(int(cams[j]) for j in members[pid])
            chosen = Counter(int(cams[j]) for j in block)
            if len(members[pid]) >= k:
                assert len(set(block)) == k  # no repeats when there are enough instances
                assert len(chosen) == min(k, len(available))  # as many distinct cameras as possible
                for a in available:  # round-robin: a camera with images left is never 2 behind
                    for c in available:
                        if chosen[a] < available[a]:
                            assert chosen[c] <= chosen[a] + 1
            else:
                assert set(block) == set(members[pid])  # all of them, then drawn with replacement
        assert len(set(block_ids)) == p  # P distinct identities


def test_batches_structure_and_camera_preference() -> None:
    pids, cams = random_population(0)
    sampler = PKSampler(pids, cams, p=6, k=4, rng=3)
    batches = sampler.epoch_batches()
    assert batches.shape == (sampler.batches_per_epoch, 24)
    check_batches(batches, pids, cams, 6, 4)
    assert list(sampler) == batches.ravel().tolist()
    assert len(sampler) == batches.size and sampler.batch_size == 24
    assert [list(b) for b in sampler.batch_sampler] == batches.tolist()
    assert len(sampler.batch_sampler) == sampler.batches_per_epoch


def test_identity_with_k_cameras_gets_k_distinct_cameras() -> None:
    # identity 0: 5 cameras, 3 images each; identity 1: 2 cameras (5 + 1 images); identity 2: 2 images
    pids = np.array([0] * 15 + [1] * 6 + [2] * 2)
    cams = np.array(list(range(5)) * 3 + [0] * 5 + [3] + [1, 1])
    sampler = PKSampler(pids, cams, p=3, k=4, rng=0)
    for epoch in range(20):
        sampler.set_epoch(epoch)
        (batch,) = sampler.epoch_batches()
        blocks = {int(pids[batch[i * 4]]): batch[i * 4 : (i + 1) * 4] for i in range(3)}
        assert len(set(cams[blocks[0]].tolist())) == 4
        assert sorted(Counter(cams[blocks[1]].tolist()).values()) == [1, 3]  # both cameras used
        assert set(blocks[2].tolist()) == {21, 22}  # fewer than K: all, with replacement
    check_batches(sampler.epoch_batches(), pids, cams, 3, 4)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    p=st.integers(1, 5),
    k=st.integers(1, 6),
    world_size=st.integers(1, 3),
    epoch=st.integers(0, 50),
)
def test_property_batches_and_disjoint_ranks(seed: int, p: int, k: int, world_size: int, epoch: int) -> None:
    pids, cams = random_population(seed, n=200, n_ids=35, n_cams=4)
    samplers = [PKSampler(pids, cams, p=p, k=k, rng=7, rank=r, world_size=world_size) for r in range(world_size)]
    seen: list[int] = []
    for s in samplers:
        s.set_epoch(epoch)
        batches = s.epoch_batches()
        check_batches(batches, pids, cams, p, k)
        seen += [int(pids[j]) for j in batches[:, ::k].ravel()]
    n_ids = len(set(pids.tolist()) - {-1})
    # each identity at most once per epoch over all ranks (ranks disjoint), remainder dropped
    assert len(seen) == len(set(seen)) == (n_ids // (p * world_size)) * p * world_size


def test_epochs_reshuffle_and_are_reproducible() -> None:
    pids, cams = random_population(1)
    a = PKSampler(pids, cams, p=4, k=2, rng=5)
    b = PKSampler(pids, cams, p=4, k=2, rng=5)
    np.testing.assert_array_equal(a.epoch_batches(), b.epoch_batches())
    assert list(a) == list(a)  # same epoch, same order (like DistributedSampler)
    first = a.epoch_batches()
    a.set_epoch(1)
    assert not np.array_equal(first, a.epoch_batches())
    np.testing.assert_array_equal(a.epoch_batches(), b.epoch_batches(1))
    c = PKSampler(pids, cams, p=4, k=2, rng=6)
    assert not np.array_equal(first, c.epoch_batches())


def test_ignores_unclustered_and_accepts_string_cameras() -> None:
    pids = [-1, 0, 0, -1, 1, 1, 1]
    cams = ["a", "b", "c", "a", "a", "b", "b"]
    sampler = PKSampler(pids, cams, p=2, k=2)
    batch = sampler.epoch_batches()[0]
    assert 0 not in batch and 3 not in batch
    check_batches(sampler.epoch_batches(), np.array(pids), np.unique(cams, return_inverse=True)[1], 2, 2)


def test_inputs_not_modified() -> None:
    pids, cams = random_population(2)
    pids_copy, cams_copy = pids.copy(), cams.copy()
    sampler = PKSampler(pids, cams, p=4, k=4)
    list(sampler)
    np.testing.assert_array_equal(pids, pids_copy)
    np.testing.assert_array_equal(cams, cams_copy)


def test_distributed_group_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    dist = types.SimpleNamespace(
        is_available=lambda: True, is_initialized=lambda: True, get_rank=lambda: 1, get_world_size=lambda: 3
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(distributed=dist))
    pids, cams = random_population(3)
    sampler = PKSampler(pids, cams, p=2, k=2)
    assert (sampler.rank, sampler.world_size) == (1, 3)
    explicit = PKSampler(pids, cams, p=2, k=2, rank=0, world_size=2)
    assert (explicit.rank, explicit.world_size) == (0, 2)


def test_no_distributed_group_means_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    sampler = PKSampler(*random_population(3), p=2, k=2)
    assert (sampler.rank, sampler.world_size) == (0, 1)
    assert "rank=0, world_size=1" in repr(sampler)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"p": 0}, ValueError, r"p must be in \[1, inf\], got 0"),
        ({"k": 0}, ValueError, r"k must be in \[1, inf\], got 0"),
        ({"k": 2.5}, TypeError, r"k must be an integer, got 2.5"),
        ({"rng": -1}, ValueError, r"rng must be None, an int seed or a numpy.random.Generator, got -1: int seeds"),
        ({"rng": "0"}, TypeError, r"rng must be None, an int seed or a numpy.random.Generator, got '0'"),
        ({"world_size": 0}, ValueError, r"world_size must be in \[1, inf\], got 0"),
        ({"rank": 2, "world_size": 2}, ValueError, r"rank must be in \[0, 1\], got 2"),
        ({"p": 30}, ValueError, r"pids must contain at least p \* world_size = 30 identities \(pid != -1\) .*got 3"),
        ({"p": 2, "world_size": 2, "rank": 0}, ValueError, r"at least p \* world_size = 4 identities .*got 3"),
    ],
)
def test_argument_errors(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        PKSampler([0, 1, 2, -1], [0, 1, 0, 1], **kwargs)


def test_rng_generator_gives_one_reproducible_base_seed() -> None:
    pids, cams = random_population(4)
    a = PKSampler(pids, cams, p=4, k=2, rng=np.random.default_rng(9))
    b = PKSampler(pids, cams, p=4, k=2, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(a.epoch_batches(), b.epoch_batches())
    assert PKSampler(pids, cams, p=4, k=2, rng=7).seed == 7


def test_array_errors() -> None:
    with pytest.raises(ValueError, match=r"arguments must have the same length .*pids=3, cams=2"):
        PKSampler([0, 1, 2], [0, 1], p=1)
    with pytest.raises(TypeError, match=r"pids must hold integers"):
        PKSampler([0.5, 1.0], [0, 1], p=1)
    with pytest.raises(ValueError, match=r"pids must be >= -1"):
        PKSampler([-2, 1], [0, 1], p=1)
    sampler = PKSampler([0, 1], [0, 1], p=1)
    with pytest.raises(ValueError, match=r"epoch must be in \[0, inf\], got -1"):
        sampler.set_epoch(-1)


# ----------------------------------------------------------------------------------------------
# InfiniteLoader


def test_infinite_loader_cycles() -> None:
    it = InfiniteLoader([1, 2, 3])
    assert [next(it) for _ in range(8)] == [1, 2, 3, 1, 2, 3, 1, 2]
    assert it.passes == 2 and iter(it) is it
    assert list(islice(InfiniteLoader("ab"), 5)) == ["a", "b", "a", "b", "a"]


class FakeLoader:
    """A loader whose sampler is a PKSampler, like DataLoader(dataset, sampler=..., batch_size=...)."""

    def __init__(self, sampler: PKSampler) -> None:
        self.sampler = sampler
        self.batch_sampler = types.SimpleNamespace(sampler=sampler)  # no set_epoch of its own

    def __iter__(self):
        return iter(self.sampler.epoch_batches().tolist())


def test_infinite_loader_advances_sampler_epoch() -> None:
    pids, cams = random_population(4)
    sampler = PKSampler(pids, cams, p=4, k=2, rng=1)
    n = sampler.batches_per_epoch
    it = InfiniteLoader(FakeLoader(sampler))
    got = [next(it) for _ in range(2 * n + 1)]
    assert sampler.epoch == 2 and it.passes == 2
    assert got[:n] == sampler.epoch_batches(0).tolist()
    assert got[n : 2 * n] == sampler.epoch_batches(1).tolist()
    assert got[2 * n] == sampler.epoch_batches(2).tolist()[0]
    frozen = PKSampler(pids, cams, p=4, k=2, rng=1)
    it = InfiniteLoader(frozen.batch_sampler, advance_epoch=False)
    got = [next(it) for _ in range(2 * n)]
    assert frozen.epoch == 0 and got[:n] == got[n:]
    it = InfiniteLoader(frozen.batch_sampler)  # the batch view forwards set_epoch to the sampler
    [next(it) for _ in range(n + 1)]
    assert frozen.epoch == 1


def test_infinite_loader_errors() -> None:
    with pytest.raises(ValueError, match=r"loader must yield at least one batch per pass, got an empty list"):
        next(InfiniteLoader([]))
    with pytest.raises(TypeError, match=r"loader must be re-iterable .*got a one-shot iterator list_iterator"):
        InfiniteLoader(iter([1, 2]))
    with pytest.raises(TypeError, match=r"loader must be iterable, got int"):
        InfiniteLoader(3)  # type: ignore[arg-type]
