"""SynthReID: layout, determinism, the camera-over-identity property (paper Fig. 1), files on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from labelrefine.data import load_dataset, make_synthreid, read_synthreid, synthreid_arrays

PIL = pytest.importorskip("PIL", reason="Pillow (torch extra) not installed")
from PIL import Image  # noqa: E402


def test_arrays_layout_by_loop() -> None:
    images, pids, cams = synthreid_arrays(
        num_ids=30, num_cams=5, images_per_id_per_cam=(2, 3), height=32, width=16, rng=4
    )
    assert images.shape == (pids.shape[0], 32, 16, 3) and images.dtype == np.uint8
    assert pids.dtype == np.int64 and cams.dtype == np.int64
    assert set(pids.tolist()) == set(range(30))
    for p in range(30):
        seen = {}
        for i in range(pids.shape[0]):
            if pids[i] == p:
                seen[int(cams[i])] = seen.get(int(cams[i]), 0) + 1
        assert 2 <= len(seen) <= 5  # every identity in 2+ cameras
        assert all(2 <= n <= 3 for n in seen.values())
        assert all(0 <= c < 5 for c in seen)
    # sorted by pid, then camera
    assert np.all(np.diff(pids) >= 0)
    assert np.all((np.diff(pids) > 0) | (np.diff(cams) >= 0))


def test_arrays_deterministic_and_seeded() -> None:
    a = synthreid_arrays(num_ids=10, num_cams=3, rng=7)
    b = synthreid_arrays(num_ids=10, num_cams=3, rng=7)
    c = synthreid_arrays(num_ids=10, num_cams=3, rng=8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.images.shape != c.images.shape or not np.array_equal(a.images, c.images)


def test_images_are_not_blank() -> None:
    images, _, _ = synthreid_arrays(num_ids=6, num_cams=3, rng=0)
    per_image_std = images.reshape(images.shape[0], -1).std(axis=1)
    assert per_image_std.min() > 10  # a person on a background, not a flat colour
    assert images.min() >= 0 and images.max() <= 255


def pooled(images: np.ndarray, factor: int = 8) -> np.ndarray:
    n, h, w, _ = images.shape
    x = images.reshape(n, h // factor, factor, w // factor, factor, 3).mean(axis=(2, 4))
    return x.reshape(n, -1) / 255.0


def heldout_accuracy(x: np.ndarray, y: np.ndarray, stratify: np.ndarray) -> float:
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.5, random_state=0, stratify=stratify)
    return LogisticRegression(max_iter=300).fit(x_tr, y_tr).score(x_te, y_te)


@pytest.mark.slow
def test_camera_easier_to_recognise_than_identity() -> None:
    """Paper Fig. 1: from raw pixels, the camera is predicted more accurately than the person."""
    images, pids, cams = synthreid_arrays(num_ids=40, num_cams=6, rng=3, camera_strength=1.0)
    x = pooled(images)  # raw pixels, 8x8 average-pooled (8 x 4 x 3 features)
    cam_acc = heldout_accuracy(x, cams, stratify=pids)
    pid_acc = heldout_accuracy(x, pids, stratify=pids)
    assert cam_acc > pid_acc
    assert cam_acc > 0.9
    # identities are still learnable (far above the 1/40 chance level), so re-ID is possible
    assert pid_acc > 5 * (1 / 40)
    # with the mean colour only, too: the camera dominates the global colour statistics
    mean_colour = images.reshape(images.shape[0], -1, 3).mean(axis=1) / 255.0
    assert heldout_accuracy(mean_colour, cams, pids) > heldout_accuracy(mean_colour, pids, pids)


def nearest_other(x: np.ndarray, pids: np.ndarray) -> np.ndarray:
    """For each image, the nearest image (Euclidean) of another identity."""
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    d[pids[:, None] == pids[None, :]] = np.inf
    return d.argmin(axis=1)


@pytest.mark.slow
def test_camera_strength_zero_removes_the_camera_and_one_makes_it_dominate() -> None:
    kwargs = {"num_ids": 30, "num_cams": 4, "rng": 2}
    off = synthreid_arrays(camera_strength=0.0, **kwargs)
    on = synthreid_arrays(camera_strength=1.0, **kwargs)
    np.testing.assert_array_equal(off.pids, on.pids)  # the knob changes the rendering, not the layout
    acc_off = heldout_accuracy(pooled(off.images), off.cams, stratify=off.pids)
    acc_on = heldout_accuracy(pooled(on.images), on.cams, stratify=on.pids)
    assert acc_off < 0.5 < 0.9 < acc_on  # chance is 1/4: without nuisances the camera is invisible
    # the nearest look-alike of another identity: from the same camera when the camera dominates
    same_cam_off = (off.cams[nearest_other(pooled(off.images), off.pids)] == off.cams).mean()
    same_cam_on = (on.cams[nearest_other(pooled(on.images), on.pids)] == on.cams).mean()
    assert same_cam_off < 0.5 < 0.9 < same_cam_on


@pytest.mark.slow
def test_families_are_look_alikes() -> None:
    """Identities of one family wear the same colours: their nearest other identity is in the family."""
    kwargs = {"num_ids": 36, "num_cams": 3, "rng": 1, "camera_strength": 0.0}
    for family_size, low, high in ((3, 0.7, 1.0), (1, 0.0, 0.3)):
        images, pids, _ = synthreid_arrays(family_size=family_size, **kwargs)
        x = pooled(images, factor=4)
        same_family = (pids[nearest_other(x, pids)] // 3 == pids // 3).mean()  # families of 3 consecutive ids
        assert low <= same_family <= high, (family_size, same_family)


def test_pose_jitter_zero_leaves_only_sensor_noise() -> None:
    kwargs = {"num_ids": 8, "num_cams": 3, "images_per_id_per_cam": (3, 3), "rng": 0, "camera_strength": 0.0}
    for jitter, low, high in ((0.0, 0.0, 3.0), (1.0, 8.0, 255.0)):
        images, pids, cams = synthreid_arrays(pose_jitter=jitter, **kwargs)
        x = images.astype(np.float64)
        diffs = [
            np.abs(x[i] - x[i + 1]).mean()
            for i in range(len(pids) - 1)
            if (pids[i], cams[i]) == (pids[i + 1], cams[i + 1])
        ]
        assert low <= np.mean(diffs) <= high, (jitter, np.mean(diffs))


@pytest.mark.slow
def test_default_nuisances_hide_identity_from_untrained_pixels_within_camera() -> None:
    """At the defaults, another identity of the same camera is usually nearer than the same identity elsewhere."""
    images, pids, cams = synthreid_arrays(num_ids=40, num_cams=6, rng=5)
    x = pooled(images)
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    same_id_other_cam = np.where((pids[:, None] == pids[None, :]) & (cams[:, None] != cams[None, :]), d, np.inf).min(1)
    other_id_same_cam = np.where((pids[:, None] != pids[None, :]) & (cams[:, None] == cams[None, :]), d, np.inf).min(1)
    assert (other_id_same_cam < same_id_other_cam).mean() > 0.5


def read_rgb(path: str) -> np.ndarray:
    with Image.open(path) as f:
        return np.asarray(f.convert("RGB"))


def test_make_synthreid_files_match_arrays(tmp_path: Path) -> None:
    kwargs = {"num_ids": 12, "num_cams": 4, "images_per_id_per_cam": (1, 3), "height": 32, "width": 16, "rng": 5}
    path = make_synthreid(tmp_path, image_format="png", query_fraction=0.5, **kwargs)
    assert path == tmp_path / "SynthReID"
    images, pids, cams = synthreid_arrays(**kwargs)
    data = read_synthreid(tmp_path)
    assert data.name == "synthreid"
    assert len(data.train) + len(data.query) + len(data.gallery) == pids.shape[0]
    for split in (data.train, data.query, data.gallery):
        for path_i, pid, cam in zip(split.paths, split.pids, split.cams, strict=True):
            frame = int(os.path.basename(path_i).split("_")[2])  # unique frame number = array index
            assert pid == pids[frame] + 1 and cam == cams[frame]  # pid 0000 is reserved in Market
            np.testing.assert_array_equal(read_rgb(path_i), images[frame])  # PNG is lossless


def test_make_synthreid_splits_like_market(tmp_path: Path) -> None:
    make_synthreid(tmp_path, num_ids=20, num_cams=5, rng=1, query_fraction=0.4, height=32, width=16)
    data = load_dataset("synthreid", tmp_path)
    train_ids = set(data.train.pids.tolist())
    test_ids = set(data.gallery.pids.tolist())
    assert train_ids == set(range(1, 11)) and test_ids == set(range(11, 21))  # disjoint halves
    assert set(data.query.pids.tolist()) == test_ids  # every test identity is queried
    for q in range(len(data.query)):  # every query has a gallery match from another camera
        pid, cam = data.query.pids[q], data.query.cams[q]
        assert any(data.gallery.pids[g] == pid and data.gallery.cams[g] != cam for g in range(len(data.gallery)))
    for pid in test_ids:  # round(0.4 * m) query cameras (between 1 and m - 1), one image each
        q_cams = [int(c) for p, c in zip(data.query.pids, data.query.cams, strict=True) if p == pid]
        all_cams = {int(c) for p, c in zip(data.gallery.pids, data.gallery.cams, strict=True) if p == pid} | set(q_cams)
        m = len(all_cams)
        assert len(q_cams) == len(set(q_cams)) == min(max(round(0.4 * m), 1), m - 1)
    for split in (data.train, data.gallery, data.query):
        assert all(os.path.basename(p).endswith("_01.jpg") for p in split.paths)


def test_make_synthreid_reuse_conflict_overwrite(tmp_path: Path) -> None:
    kwargs = {"num_ids": 4, "num_cams": 2, "height": 32, "width": 16}
    path = make_synthreid(tmp_path, **kwargs)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["num_ids"] == 4 and meta["seed"] == 0 and meta["format_version"] == 2
    assert (meta["family_size"], meta["camera_strength"], meta["pose_jitter"]) == (3, 0.3, 1.0)
    marker = path / "bounding_box_train" / "keep.txt"
    marker.touch()
    assert make_synthreid(tmp_path, **kwargs) == path and marker.exists()  # same arguments: reused as is
    with pytest.raises(FileExistsError, match=r"root must not already hold another dataset: .*SynthReID' exists"):
        make_synthreid(tmp_path, rng=1, **kwargs)
    make_synthreid(tmp_path, rng=1, overwrite=True, **kwargs)
    assert not marker.exists() and json.loads((path / "meta.json").read_text())["seed"] == 1


def test_make_synthreid_refuses_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "SynthReID").mkdir()
    (tmp_path / "SynthReID" / "mine.txt").write_text("hello")
    with pytest.raises(FileExistsError, match=r"pass overwrite=True to replace it"):
        make_synthreid(tmp_path, num_ids=4)
    make_synthreid(tmp_path, num_ids=4, num_cams=2, height=32, width=16, overwrite=True)
    assert (tmp_path / "SynthReID" / "mine.txt").read_text() == "hello"  # only the split folders are replaced


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_ids": 0}, ValueError, r"num_ids must be in \[1, inf\], got 0"),
        ({"num_cams": 1}, ValueError, r"num_cams must be in \[2, inf\], got 1"),
        ({"num_cams": 2.0}, TypeError, r"num_cams must be an integer, got 2.0"),
        ({"images_per_id_per_cam": 3}, TypeError, r"images_per_id_per_cam must be a pair of integers .*got 3"),
        ({"images_per_id_per_cam": (3, 1)}, ValueError, r"must satisfy 1 <= low <= high, got \(3, 1\)"),
        ({"images_per_id_per_cam": (0, 2)}, ValueError, r"must satisfy 1 <= low <= high, got \(0, 2\)"),
        ({"height": 8}, ValueError, r"height must be in \[16, inf\], got 8"),
        ({"width": 4}, ValueError, r"width must be in \[8, inf\], got 4"),
        ({"rng": -1}, ValueError, r"rng must be None, an int seed or a numpy.random.Generator, got -1: int seeds"),
        ({"seed": 0}, TypeError, r"unexpected keyword argument 'seed'"),
        ({"family_size": 0}, ValueError, r"family_size must be in \[1, inf\], got 0"),
        ({"camera_strength": 2.5}, ValueError, r"camera_strength must be in \[0, 2\], got 2.5"),
        ({"camera_strength": "strong"}, TypeError, r"camera_strength must be a real number in \[0, 2\], got 'strong'"),
        ({"pose_jitter": -0.1}, ValueError, r"pose_jitter must be in \[0, 1\], got -0.1"),
        ({"pose_jitter": True}, TypeError, r"pose_jitter must be a real number in \[0, 1\], got True"),
    ],
)
def test_argument_errors(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        synthreid_arrays(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_ids": 1}, ValueError, r"num_ids must be >= 2 \(half train, half test identities\), got 1"),
        ({"query_fraction": 1.5}, ValueError, r"query_fraction must be in \[0, 1\], got 1.5"),
        ({"query_fraction": "half"}, TypeError, r"query_fraction must be a real number in \[0, 1\], got 'half'"),
        ({"image_format": "gif"}, ValueError, r"image_format must be one of 'jpg', 'png'; got 'gif'"),
        ({"overwrite": 1}, TypeError, r"overwrite must be a bool, got int"),
    ],
)
def test_make_argument_errors(tmp_path: Path, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        make_synthreid(tmp_path, **kwargs)
    assert not (tmp_path / "SynthReID").exists()


def test_make_root_type_error() -> None:
    with pytest.raises(TypeError, match=r"root must be a path \(str or os.PathLike\), got NoneType"):
        make_synthreid(None)  # type: ignore[arg-type]


def test_make_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "SynthReID").write_text("not a folder")
    with pytest.raises(FileExistsError, match=r"root must not hold a file named SynthReID, got '.*SynthReID'"):
        make_synthreid(tmp_path, num_ids=4, overwrite=True)
