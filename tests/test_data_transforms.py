"""build_transforms: the test transform against a numpy reference, each training augmentation in isolation."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch extra not installed")
pytest.importorskip("torchvision", reason="torch extra not installed")
from PIL import Image  # noqa: E402

from labelrefine.data import IMAGENET_MEAN, IMAGENET_STD, build_transforms  # noqa: E402

H, W = 32, 16


def random_image(seed: int = 0, size: tuple[int, int] = (20, 44)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def reference(img: Image.Image) -> np.ndarray:
    """Resize (bicubic), scale to [0, 1], normalise per channel, HWC -> CHW."""
    arr = np.asarray(img.resize((W, H), Image.BICUBIC), dtype=np.float32) / 255.0
    out = np.empty((3, H, W), np.float32)
    for c in range(3):
        out[c] = (arr[:, :, c] - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
    return out


def test_test_transform_matches_reference() -> None:
    img = random_image()
    out = build_transforms(H, W, train=False)(img)
    assert out.shape == (3, H, W) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), reference(img), atol=1e-5)


def test_train_transform_steps() -> None:
    names = [type(t).__name__ for t in build_transforms(H, W).transforms]
    assert names == ["Resize", "RandomHorizontalFlip", "Pad", "RandomCrop", "ToTensor", "Normalize", "RandomErasing"]
    names = [type(t).__name__ for t in build_transforms(H, W, flip_p=0, pad=0, erasing_p=0).transforms]
    assert names == ["Resize", "ToTensor", "Normalize"]
    names = [type(t).__name__ for t in build_transforms(H, W, train=False, erasing_p=1.0).transforms]
    assert names == ["Resize", "ToTensor", "Normalize"]


def test_flip() -> None:
    img = random_image(1)
    out = build_transforms(H, W, flip_p=1.0, pad=0, erasing_p=0)(img)
    np.testing.assert_allclose(out.numpy(), reference(img)[:, :, ::-1], atol=1e-5)


def test_pad_and_crop_is_a_shifted_window() -> None:
    img = random_image(2)
    pad = 3
    transform = build_transforms(H, W, flip_p=0, pad=pad, erasing_p=0)
    resized = np.asarray(img.resize((W, H), Image.BICUBIC))
    padded = np.zeros((H + 2 * pad, W + 2 * pad, 3), np.uint8)
    padded[pad : pad + H, pad : pad + W] = resized
    candidates = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[dy : dy + H, dx : dx + W].astype(np.float32) / 255.0
            candidates.append(((crop - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))
    torch.manual_seed(0)
    offsets = set()
    for _ in range(20):
        out = transform(img).numpy()
        matches = [i for i, c in enumerate(candidates) if np.allclose(out, c, atol=1e-5)]
        assert len(matches) >= 1
        offsets.add(matches[0])
    assert len(offsets) > 1  # the crop position is random


def test_random_erasing_fills_a_box_with_the_mean() -> None:
    img = random_image(3)
    torch.manual_seed(1)
    out = build_transforms(H, W, flip_p=0, pad=0, erasing_p=1.0)(img).numpy()
    changed = np.any(out != reference(img), axis=0) | np.all(out == 0, axis=0)
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    assert rows.size and cols.size
    box = out[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    assert np.all(box == 0)  # value 0 after normalisation = the mean colour
    outside = np.ones((H, W), bool)
    outside[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = False
    np.testing.assert_allclose(out[:, outside], reference(img)[:, outside], atol=1e-5)


def test_custom_mean_std_and_interpolation() -> None:
    img = random_image(4)
    out = build_transforms(H, W, train=False, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="nearest")(img)
    arr = np.asarray(img.resize((W, H), Image.NEAREST), np.float32).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(out.numpy(), (arr - 0.5) / 0.5, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"height": 0}, ValueError, r"height must be in \[1, inf\], got 0"),
        ({"width": 3.5}, TypeError, r"width must be an integer, got 3.5"),
        ({"train": 1}, TypeError, r"train must be a bool, got int"),
        ({"flip_p": 2}, ValueError, r"flip_p must be in \[0, 1\], got 2"),
        ({"pad": -1}, ValueError, r"pad must be in \[0, inf\], got -1"),
        ({"erasing_p": "x"}, TypeError, r"erasing_p must be a real number in \[0, 1\], got 'x'"),
        (
            {"mean": (0.5, 0.5)},
            TypeError,
            r"mean must be a sequence of 3 numbers \(one per RGB channel\), got \(0.5, 0.5\)",
        ),
        ({"std": (0.2, 0.0, 0.2)}, ValueError, r"std must be > 0 for every channel, got \(0.2, 0.0, 0.2\)"),
        ({"interpolation": "lanczos"}, ValueError, r"interpolation must be one of 'bicubic', 'bilinear', 'nearest'"),
    ],
)
def test_argument_errors(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        build_transforms(**kwargs)
