"""Public stage-1 label alignment (labelrefine.io) against plain loops, and its refusals."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from labelrefine.io import align_by_index, align_by_name, dataset_fingerprint


def loop_align(labels, keys, train_keys):
    """By exact path if any matches, else by file name; -1 where absent."""
    for exact in (True, False):
        name = (lambda k: k) if exact else (lambda k: k.replace("\\", "/").rsplit("/", 1)[-1])
        table = {name(k): int(v) for k, v in zip(keys, labels, strict=True)}
        out = [table.get(name(k), -1) for k in train_keys]
        if any(name(k) in table for k in train_keys):
            return out
    raise AssertionError("nothing matches")


@pytest.mark.parametrize("moved", [False, True])
def test_align_by_name_matches_a_loop(moved):
    rng = np.random.default_rng(0)
    train = [f"/data/market/bounding_box_train/{i:04d}_c{i % 6 + 1}s1_{i:06d}.jpg" for i in range(50)]
    listed = rng.permutation(50)[:40]
    keys = [train[i].replace("/data/market", "/elsewhere") if moved else train[i] for i in listed]
    labels = rng.integers(-1, 10, 40).astype(np.float64)  # released labels may be float64
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = align_by_name(labels, keys, train)
    assert out.tolist() == loop_align(labels, keys, train)
    assert out.dtype == np.int64
    assert [str(w.message) for w in caught] == ["labels: 10 of 50 training images have no label (set to -1)"]


def test_align_by_name_refusals():
    with pytest.raises(ValueError, match=r"stage1: none of its 2 keys matches a training image"):
        align_by_name([0, 1], ["a.jpg", "b.jpg"], ["c.jpg"], source="stage1")
    with pytest.raises(ValueError, match=r"labels: keys are not unique \(paths repeat\)"):
        align_by_name([0, 1], ["a.jpg", "a.jpg"], ["a.jpg"])
    with pytest.raises(ValueError, match=r"keys must have one entry per label \(2\), got shape \(3,\)"):
        align_by_name([0, 1], ["a", "b", "c"], ["a"])
    with pytest.raises(TypeError, match=r"labels must hold integers.*0.5"):
        align_by_name([0.5], ["a"], ["a"])


def test_align_by_index_checks_length_and_cameras():
    cams = ["c1", "c1", "c2"]
    assert align_by_index(np.array([1.0, -1.0, 2.0]), cams, cams=cams).tolist() == [1, -1, 2]
    with pytest.raises(ValueError, match=r"3 labels for 4 training images.*align_by_name"):
        align_by_index([0, 1, 2], [0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"image 2 is from camera 0 in the labels but 1 in the dataset \(2 images"):
        align_by_index([0, 1, 2, 3], [0, 0, 1, 1], cams=[0, 0, 0, 0])


def test_fingerprint_ignores_folder_and_order_not_names_or_generator():
    a = dataset_fingerprint(["x/1.jpg", "x/2.jpg"])
    assert a == dataset_fingerprint(["y\\2.jpg", "y\\1.jpg"])
    assert a != dataset_fingerprint(["x/1.jpg", "x/3.jpg"])
    assert a != dataset_fingerprint(["x/1.jpg", "x/2.jpg"], extra="seed=1")
    assert len(a) == 16
