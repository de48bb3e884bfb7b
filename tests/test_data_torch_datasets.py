"""ImageDataset / ArrayDataset, and the pieces together in a torch DataLoader (CPU, tiny data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch extra not installed")
pytest.importorskip("torchvision", reason="torch extra not installed")
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from labelrefine.data import (  # noqa: E402
    ArrayDataset,
    ImageDataset,
    InfiniteLoader,
    PKSampler,
    build_transforms,
    load_dataset,
    make_synthreid,
    synthreid_arrays,
)


def write_images(folder: Path, n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = rng.integers(0, 256, (n, 12, 6, 3), dtype=np.uint8)
    paths = []
    for i in range(n):
        path = folder / f"{i:04d}_c1s1_{i:06d}_01.png"
        Image.fromarray(arrays[i]).save(path)
        paths.append(str(path))
    return paths, arrays


def test_image_dataset_items(tmp_path: Path) -> None:
    paths, arrays = write_images(tmp_path, 4)
    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((12, 6), 77, np.uint8), mode="L").save(gray)
    ds = ImageDataset([*paths, str(gray)], [5, 5, 6, -1, 7], [0, 1, 0, 2, 1])
    assert len(ds) == 5
    for i in range(4):
        item = ds[i]
        assert set(item) == {"img", "pid", "cam", "index"}
        np.testing.assert_array_equal(np.asarray(item["img"]), arrays[i])
        assert (item["pid"], item["cam"], item["index"]) == ([5, 5, 6, -1][i], [0, 1, 0, 2][i], i)
    gray_item = ds[np.int64(4)]
    assert gray_item["img"].mode == "RGB" and np.asarray(gray_item["img"]).tolist()[0][0] == [77, 77, 77]
    assert gray_item["index"] == 4 and isinstance(gray_item["index"], int)


def test_image_dataset_transform_and_collate(tmp_path: Path) -> None:
    paths, arrays = write_images(tmp_path, 6)
    transform = build_transforms(12, 6, train=False)
    ds = ImageDataset(paths, [1, 1, 2, 2, 3, 3], [0, 1, 0, 1, 0, 1], transform=transform)
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=False)))
    assert batch["img"].shape == (4, 3, 12, 6)
    assert batch["pid"].tolist() == [1, 1, 2, 2] and batch["index"].tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(batch["img"][2], transform(Image.fromarray(arrays[2])))


def test_image_dataset_from_split_and_errors(tmp_path: Path) -> None:
    make_synthreid(tmp_path, num_ids=4, num_cams=2, height=32, width=16)
    split = load_dataset("synthreid", tmp_path).train
    ds = ImageDataset.from_split(split)
    assert len(ds) == len(split) and ds.pids.tolist() == split.pids.tolist()
    assert ds[0]["img"].size == (16, 32)
    with pytest.raises(TypeError, match=r"split must be a labelrefine.data.Split, got list"):
        ImageDataset.from_split([])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"transform must be callable or None, got int"):
        ImageDataset(split.paths, split.pids, split.cams, transform=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"arguments must have the same length"):
        ImageDataset(split.paths, split.pids[:-1], split.cams)


def test_array_dataset_images_without_and_with_transform() -> None:
    images, pids, cams = synthreid_arrays(num_ids=3, num_cams=2, height=32, width=16, rng=2)
    before = images.copy()
    ds = ArrayDataset(images, pids, cams)
    for i in (0, len(ds) - 1):
        item = ds[i]
        expected = np.stack([images[i][:, :, c] for c in range(3)]).astype(np.float32) / 255.0
        np.testing.assert_allclose(item["img"].numpy(), expected, atol=1e-7)
        assert (item["pid"], item["cam"], item["index"]) == (int(pids[i]), int(cams[i]), i)
    transform = build_transforms(32, 16, train=False)
    ds_t = ArrayDataset(images, pids, cams, transform=transform)
    torch.testing.assert_close(ds_t[1]["img"], transform(Image.fromarray(images[1])))
    item = ds[0]
    item["img"] += 1  # returned tensors do not alias the caller's array
    np.testing.assert_array_equal(images, before)


def test_array_dataset_features_and_defaults() -> None:
    feats = np.arange(12, dtype=np.float64).reshape(4, 3)
    ds = ArrayDataset(feats)
    item = ds[2]
    assert item["img"].dtype == torch.float32 and item["img"].tolist() == [6.0, 7.0, 8.0]
    assert (item["pid"], item["cam"]) == (-1, 0)
    ds_t = ArrayDataset(torch.tensor(feats), pids=[0, 0, 1, 1], transform=lambda x: x * 2)
    assert ds_t[3]["img"].tolist() == [18.0, 20.0, 22.0] and ds_t[3]["pid"] == 1
    pids = np.array([0, 0, 1, 1])
    ds_p = ArrayDataset(feats, pids)
    pids[0] = 9
    assert ds_p[0]["pid"] == 0  # labels were copied


def test_array_dataset_errors() -> None:
    feats = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match=r"data must have at least one sample along axis 0, got shape \(0, 2\)"):
        ArrayDataset(np.zeros((0, 2)))
    with pytest.raises(TypeError, match=r"data must be numeric \(uint8 images or float features\), got dtype <U1"):
        ArrayDataset(np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"arguments must have the same length .*data=3, pids=2, cams=3"):
        ArrayDataset(feats, [0, 1])
    with pytest.raises(TypeError, match=r"cams must hold 0-based integer camera indices, got dtype float64"):
        ArrayDataset(feats, cams=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"cams must be >= 0 \(0-based camera indices\), got minimum -1"):
        ArrayDataset(feats, cams=[0, -1, 0])
    with pytest.raises(ValueError, match=r"cams must be 1-D \(one camera per sample\), got shape \(3, 1\)"):
        ArrayDataset(feats, cams=[[0], [1], [0]])
    with pytest.raises(TypeError, match=r"transform must be callable or None, got str"):
        ArrayDataset(feats, transform="flip")  # type: ignore[arg-type]


def test_dataloader_with_pk_sampler_and_infinite_loader() -> None:
    images, pids, cams = synthreid_arrays(num_ids=12, num_cams=4, height=32, width=16, rng=0)
    ds = ArrayDataset(images, pids, cams, transform=build_transforms(32, 16, pad=2))
    sampler = PKSampler(pids, cams, p=4, k=2, rng=0)
    loader = DataLoader(ds, batch_size=sampler.batch_size, sampler=sampler, drop_last=True)
    batches = list(loader)
    assert len(batches) == sampler.batches_per_epoch == 3
    for batch, expected in zip(batches, sampler.epoch_batches(), strict=True):
        assert batch["img"].shape == (8, 3, 32, 16)
        assert batch["index"].tolist() == expected.tolist()
        assert batch["pid"].tolist() == pids[expected].tolist()
    by_batches = DataLoader(ds, batch_sampler=sampler.batch_sampler)
    assert [b["index"].tolist() for b in by_batches] == sampler.epoch_batches().tolist()
    it = InfiniteLoader(loader)
    got = [next(it)["index"].tolist() for _ in range(7)]
    assert sampler.epoch == 2 and it.passes == 2  # DataLoader.sampler is the PKSampler: epochs advance
    assert got[3:6] == sampler.epoch_batches(1).tolist()
