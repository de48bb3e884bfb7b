"""The synthetic generator's knobs do what their docstrings say."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import brute_knn

from labelrefine.synthetic import fragment_local_labels, make_camera_biased, merge_look_alikes, noisy_local_labels


def fragments_per_group(data):
    """Number of distinct local labels of each (identity, camera) group, and group sizes."""
    keys = sorted({(p, c) for p, c in zip(data.pids.tolist(), data.cams.tolist(), strict=True)})
    counts, sizes = [], []
    for p, c in keys:
        members = (data.pids == p) & (data.cams == c)
        counts.append(len(set(data.local_labels[members].tolist())))
        sizes.append(int(members.sum()))
    return np.array(counts), np.array(sizes)


def identities_per_local_cluster(data):
    return {
        label: set(data.pids[data.local_labels == label].tolist()) for label in set(data.local_labels.tolist()) - {-1}
    }


@pytest.mark.parametrize("fragments", [1, 2, 4, 8])
def test_local_fragments_splits_each_identity_in_camera(fragments):
    data = make_camera_biased(40, 4, images_per_camera=(3, 12), local_fragments=fragments, local_noise=0.0, rng=1)
    counts, sizes = fragments_per_group(data)
    np.testing.assert_array_equal(counts, np.minimum(sizes, fragments))
    assert all(len(ids) == 1 for ids in identities_per_local_cluster(data).values())  # pure
    for label in set(data.local_labels.tolist()):  # ids unique across cameras
        assert len(set(data.cams[data.local_labels == label].tolist())) == 1


def test_local_cluster_size_mimics_agglomerative_n_over_5():
    data = make_camera_biased(40, 4, images_per_camera=(10, 30), local_cluster_size=5, local_noise=0.0, rng=2)
    counts, sizes = fragments_per_group(data)
    np.testing.assert_array_equal(counts, np.ceil(sizes / 5))
    cluster_sizes = np.bincount(data.local_labels)
    assert cluster_sizes.min() >= 2 and cluster_sizes.max() <= 5
    assert counts.mean() > 2  # one person in one camera spans several local clusters


@pytest.mark.parametrize("impurity", [0.05, 0.1, 0.3])
def test_local_impurity_is_the_fraction_of_clusters_holding_two_look_alikes(impurity):
    data = make_camera_biased(
        150, 4, images_per_camera=(4, 12), local_fragments=2, local_impurity=impurity, local_noise=0.0, rng=4
    )
    clusters = identities_per_local_cluster(data)
    impure = [label for label, ids in clusters.items() if len(ids) > 1]
    assert abs(len(impure) / len(clusters) - impurity) < 0.01
    for label in impure:
        members = data.local_labels == label
        assert len(set(data.pids[members].tolist())) == 2
        assert len(set(data.families[members].tolist())) == 1  # look-alikes
        assert len(set(data.cams[members].tolist())) == 1


def test_camera_bias_merges_look_alikes_of_one_camera():
    def wrong_neighbour_rate(strength):
        data = make_camera_biased(90, 4, camera_strength=strength, local_noise=0.0, rng=5)
        indices, _ = brute_knn(data.feats.astype(np.float64), 6)
        nbr = indices[:, 1:]
        wrong = data.pids[nbr] != data.pids[:, None]
        look_alike_same_camera = (
            wrong & (data.families[nbr] == data.families[:, None]) & (data.cams[nbr] == data.cams[:, None])
        )
        return wrong.mean(), look_alike_same_camera.sum() / max(wrong.sum(), 1)

    weak, _ = wrong_neighbour_rate(0.2)
    strong, share = wrong_neighbour_rate(0.8)
    assert strong > weak + 0.1  # the camera pulls other identities into the neighbourhood
    assert share > 0.5  # and most of them are look-alikes seen by the same camera


def test_noisy_local_labels_corrupts_the_given_labels():
    rng = np.random.default_rng(0)
    labels, cams = rng.integers(0, 50, 5000), rng.integers(0, 3, 5000)
    noisy = noisy_local_labels(labels, cams, error_rate=0.2, rng=1)
    changed = noisy != labels
    assert 0.15 < changed.mean() < 0.2  # a merge may keep its label by chance
    assert abs((noisy == -1).mean() - 0.1) < 0.02
    np.testing.assert_array_equal(noisy_local_labels(labels, cams, error_rate=0.0), labels)


def test_same_rng_same_data_and_inputs_unchanged():
    a = make_camera_biased(20, 3, local_fragments=2, local_impurity=0.1, rng=7)
    b = make_camera_biased(20, 3, local_fragments=2, local_impurity=0.1, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.local_labels, b.local_labels)
    np.testing.assert_array_equal(a.feats, b.feats)
    labels = np.array([0, 0, 1, 1])
    merge_look_alikes(labels, [5, 5, 6, 6], [0, 0, 0, 0], [0, 0, 0, 0], impurity=0.5)
    np.testing.assert_array_equal(labels, [0, 0, 1, 1])


def test_bad_knobs():
    with pytest.raises(ValueError, match="give local_fragments or local_cluster_size, not both; got 2 and 5"):
        make_camera_biased(10, 3, local_fragments=2, local_cluster_size=5)
    with pytest.raises(ValueError, match=r"cluster_size must be a number >= 1 .* got 0.5"):
        fragment_local_labels([0, 0], [0, 0], cluster_size=0.5)
    with pytest.raises(ValueError, match=r"local_cluster_size must be a number >= 1 .* got nan"):
        make_camera_biased(10, 3, local_cluster_size=float("nan"))
    with pytest.raises(ValueError, match=r"local_fragments must be in \[1, inf\], got 0"):
        make_camera_biased(10, 3, local_fragments=0)
    with pytest.raises(TypeError, match="local_fragments must be an integer, got True"):
        make_camera_biased(10, 3, local_fragments=True)
    with pytest.raises(ValueError, match="local_impurity must be below 1 .* got 1.0"):
        make_camera_biased(10, 3, local_impurity=1.0)
    with pytest.raises(ValueError, match="impurity must be below 1 .* got 1.0"):
        merge_look_alikes([0], [0], [0], [0], impurity=1.0)
    with pytest.raises(TypeError, match="images_per_camera must be a pair .* got 5"):
        make_camera_biased(10, 3, images_per_camera=5)
    with pytest.raises(ValueError, match="noise must be a finite non-negative number, got nan"):
        make_camera_biased(10, 3, noise=float("nan"))
