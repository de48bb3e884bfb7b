"""SynthReID: a small generated multi-camera person re-identification dataset.

Persons are drawn with numpy as head / torso / arms / legs shapes on a camera background.
Identity is carried by clothing a small CNN can learn: upper and lower colours, the pattern of
the top (plain, horizontal or vertical stripes, two-tone, chest panel) and its second colour,
shorts or trousers, a bag, hair, skin, shoes and build. Identities come in look-alike families
that share their clothing colours and differ in the details. Each camera adds a colour cast,
a brightness offset and an illumination ramp, blur, sensor noise, its own textured background
and a viewpoint (distance, position and walking direction). From raw pixels, or from the
features of an untrained network, the camera is easier to recognise than the person, so a
camera-unaware clustering merges look-alikes seen by one camera: the failure mode CALR addresses
(paper Fig. 1: clusters merge images of different people from one camera).

Drawing is vectorised over blocks of images; only writing the files loops over images.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from scipy.ndimage import gaussian_filter

from .._optional import import_optional
from .._validation import check_choice, check_int, check_probability, check_real, seed_from

__all__ = ["SynthReIDArrays", "make_synthreid", "synthreid_arrays"]

_BLOCK = 512  # images drawn at once (bounded memory: ~ _BLOCK * H * W * 3 * 4 bytes per temporary)
_FORMAT_VERSION = 2


class SynthReIDArrays(NamedTuple):
    """In-memory SynthReID images (see :func:`synthreid_arrays`)."""

    images: np.ndarray
    """uint8, shape (N, height, width, 3), RGB."""
    pids: np.ndarray
    """int64, shape (N,), identities 0..num_ids-1."""
    cams: np.ndarray
    """int64, shape (N,), cameras 0..num_cams-1."""


class _Knobs(NamedTuple):
    family_size: int
    camera_strength: float
    pose_jitter: float


def _check_args(
    num_ids: Any,
    num_cams: Any,
    images_per_id_per_cam: Any,
    height: Any,
    width: Any,
    rng: Any,
    family_size: Any = 3,
    camera_strength: Any = 1.0,
    pose_jitter: Any = 1.0,
) -> tuple[int, int, tuple[int, int], int, int, int, _Knobs]:
    num_ids = check_int(num_ids, "num_ids", low=1)
    num_cams = check_int(num_cams, "num_cams", low=2)
    if (
        not isinstance(images_per_id_per_cam, (tuple, list))
        or len(images_per_id_per_cam) != 2
        or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in images_per_id_per_cam)
    ):
        raise TypeError(f"images_per_id_per_cam must be a pair of integers (low, high), got {images_per_id_per_cam!r}")
    lo, hi = int(images_per_id_per_cam[0]), int(images_per_id_per_cam[1])
    if not 1 <= lo <= hi:
        raise ValueError(f"images_per_id_per_cam must satisfy 1 <= low <= high, got ({lo}, {hi})")
    height = check_int(height, "height", low=16)
    width = check_int(width, "width", low=8)
    seed = seed_from(rng, "rng")
    knobs = _Knobs(
        check_int(family_size, "family_size", low=1),
        check_real(camera_strength, "camera_strength", low=0.0, high=2.0),
        check_real(pose_jitter, "pose_jitter", low=0.0, high=1.0),
    )
    return num_ids, num_cams, (lo, hi), height, width, seed, knobs


def _layout(num_ids: int, num_cams: int, lo: int, hi: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-image (pid, cam), sorted by pid then camera; every identity in 2..num_cams cameras."""
    n_visible = rng.integers(2, num_cams + 1, size=num_ids)
    cam_rank = np.argsort(rng.random((num_ids, num_cams)), axis=1).argsort(axis=1)
    visible = cam_rank < n_visible[:, None]
    counts = np.where(visible, rng.integers(lo, hi + 1, size=(num_ids, num_cams)), 0)
    pid_grid, cam_grid = np.meshgrid(np.arange(num_ids), np.arange(num_cams), indexing="ij")
    flat = counts.ravel()
    return np.repeat(pid_grid.ravel(), flat), np.repeat(cam_grid.ravel(), flat)


_N_PATTERNS = 5  # plain, horizontal stripes, vertical stripes, two-tone (front/back halves), chest panel


def _identity_params(num_ids: int, family_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Clothing, hair, skin and build per identity; identities of one family wear look-alike colours.

    A family of ``family_size`` identities shares its upper and lower clothing colours (each
    member shifted by a little); its members differ by the pattern of the top (all different
    while the family has at most five members), its second colour, shorts or trousers, a bag,
    hair and build: details a network can learn, which a camera's colour cast swamps.
    """
    skin = np.array([[236, 188, 160], [198, 134, 66], [141, 85, 36], [255, 219, 172], [224, 172, 105]], np.float32)
    n_fam = -(-num_ids // family_size)
    family = np.arange(num_ids) // family_size
    member = np.arange(num_ids) % family_size

    def colours(n: int) -> np.ndarray:
        return rng.uniform(25, 230, (n, 3)).astype(np.float32)

    near = 10.0 if family_size > 1 else 0.0  # look-alikes: the family colour, shifted a little
    upper = np.clip(colours(n_fam)[family] + rng.normal(0, near, (num_ids, 3)), 0, 255).astype(np.float32)
    lower = np.clip(colours(n_fam)[family] + rng.normal(0, near, (num_ids, 3)), 0, 255).astype(np.float32)
    pattern = (rng.integers(0, _N_PATTERNS, n_fam)[family] + member) % _N_PATTERNS
    return {
        "upper": upper,
        "lower": lower,
        "second": colours(num_ids),  # second colour of the top's pattern
        "pattern": pattern,
        "period": rng.integers(2, 4, num_ids).astype(np.float32),  # half-period of stripes, in pixels
        "shorts": rng.random(num_ids) < 0.35,
        "bag": rng.random(num_ids) < 0.4,
        "bag_colour": colours(num_ids) * 0.6,
        "hair": rng.uniform(10, 140, (num_ids, 1)).astype(np.float32) * np.array([1.0, 0.8, 0.6], np.float32),
        "long_hair": rng.random(num_ids) < 0.4,
        "skin": skin[rng.integers(0, len(skin), num_ids)],
        "shoes": rng.uniform(10, 200, (num_ids, 1)).astype(np.float32) * np.ones(3, np.float32),
        "build": rng.uniform(0.85, 1.15, num_ids).astype(np.float32),  # body width factor
        "tall": rng.uniform(0.9, 1.0, num_ids).astype(np.float32),
    }


def _camera_params(
    num_cams: int, height: int, width: int, strength: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Per-camera nuisances, each scaled by ``strength`` (0: every camera renders alike)."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    base = rng.uniform(30, 220, (num_cams, 1, 1, 3)).astype(np.float32)
    second = rng.uniform(30, 220, (num_cams, 1, 1, 3)).astype(np.float32)
    kind = np.arange(num_cams) % 4  # gradient, horizontal bands, vertical bars, checkerboard
    freq = rng.uniform(2.0, 6.0, num_cams).astype(np.float32)[:, None, None, None]
    horizon = rng.uniform(0.55, 0.8, num_cams).astype(np.float32)[:, None, None, None]
    gradient = np.broadcast_to(y, (1, height, width, 1))
    bands = (np.floor(y * freq * 2) % 2).astype(np.float32) * np.ones_like(x)
    bars = (np.floor(x * freq * 2) % 2).astype(np.float32) * np.ones_like(y)
    checker = (np.floor(y * freq * 2) + np.floor(x * freq)) % 2
    mix = np.select([kind[:, None, None, None] == k for k in range(4)], [gradient, bands, bars, checker])
    background = base * (1 - mix) + second * mix
    floor = y > horizon  # a floor of its own colour below the camera's horizon line
    floor_colour = rng.uniform(40, 200, (num_cams, 1, 1, 3)).astype(np.float32)
    background = np.where(floor, floor_colour, background)
    neutral = np.where(y > 0.7, np.float32(110.0), np.float32(150.0)) * np.ones((1, 1, width, 3), np.float32)
    s = np.float32(strength)
    w = min(1.0, strength)  # strength 0: one shared plain background
    return {
        "background": (w * background + (1 - w) * neutral).astype(np.float32),  # (C, H, W, 3)
        "gain": (1 + s * rng.uniform(-0.4, 0.4, (num_cams, 3))).astype(np.float32),  # colour cast
        "offset": (s * rng.uniform(-35, 35, num_cams)).astype(np.float32),  # brightness
        "light": (s * rng.uniform(-50, 50, num_cams)).astype(np.float32),  # top-to-bottom illumination ramp
        "blur": strength * rng.uniform(0.0, 1.2, num_cams),  # Gaussian sigma in pixels
        "noise": (2.0 + s * rng.uniform(0.0, 6.0, num_cams)).astype(np.float32),  # sensor noise (std)
        "scale": (1 - s * rng.uniform(0.0, 0.12, num_cams)).astype(np.float32),  # viewpoint: distance
        "shift": (s * rng.uniform(-0.06, 0.06, num_cams)).astype(np.float32),  # viewpoint: where people walk
        "mirror": (rng.random(num_cams) < 0.5) & (strength > 0),  # viewpoint: walking direction
    }


def _col(a: np.ndarray) -> np.ndarray:
    """Per-image scalar -> (n, 1, 1), float32."""
    return np.asarray(a).astype(np.float32)[:, None, None]


def _rgb(a: np.ndarray) -> np.ndarray:
    """Per-image colour -> (n, 1, 1, 3)."""
    return a[:, None, None, :]


class _Frame(NamedTuple):
    """Where each figure of a block stands.

    Pixel rows ``y`` (1, H, 1), the horizontal coordinate ``u`` (n, 1, W) in the person's frame
    (mirrored with the walking direction) and per-image top, scale, build and leg spread (n, 1, 1).
    """

    y: np.ndarray
    u: np.ndarray
    top: np.ndarray
    scale: np.ndarray
    build: np.ndarray
    spread: np.ndarray

    def at(self, frac: float) -> np.ndarray:
        """Image row (a fraction of the height) at ``frac`` of the figure's height from its top."""
        return self.top + frac * self.scale


def _frame(
    pids: np.ndarray,
    cams: np.ndarray,
    ident: dict[str, np.ndarray],
    cam: dict[str, np.ndarray],
    height: int,
    width: int,
    jitter: float,
    rng: np.random.Generator,
) -> _Frame:
    """Viewpoint per camera, pose and crop jitter per image (draws from ``rng`` in a fixed order)."""
    n = int(pids.shape[0])
    y = ((np.arange(height, dtype=np.float32) + 0.5) / height)[None, :, None]
    x = ((np.arange(width, dtype=np.float32) + 0.5) / width)[None, None, :]
    j = np.float32(jitter)
    scale = _col(ident["tall"][pids] * cam["scale"][cams] * (1 - j * rng.uniform(0.0, 0.12, n)))
    cx = _col(0.5 + cam["shift"][cams] + j * rng.uniform(-0.08, 0.08, n))
    top = _col(0.03 + j * rng.uniform(-0.025, 0.025, n))
    spread = _col(j * rng.uniform(0.0, 0.12, n))  # walking: legs apart at the feet
    build = _col(ident["build"][pids] * (1 + j * rng.uniform(-0.06, 0.06, n)))
    mirror = _col(np.where(cam["mirror"][cams], -1.0, 1.0))  # which side faces the camera
    return _Frame(y=y, u=(x - cx) * mirror, top=top, scale=scale, build=build, spread=spread)


def _top_pattern(
    f: _Frame,
    ident: dict[str, np.ndarray],
    pids: np.ndarray,
    torso: np.ndarray,
    torso_hw: np.ndarray,
    height: int,
    width: int,
) -> np.ndarray:
    """Pixels of the top's second colour; drawn in the person's frame, so it flips with the walking direction."""
    pattern = _col(ident["pattern"][pids])
    period = _col(ident["period"][pids])
    row = np.floor((f.y - f.at(0.17)) * height)
    column = np.floor(f.u * width)
    return torso & (
        ((pattern == 1) & (np.floor(row / period) % 2 == 1))
        | ((pattern == 2) & (np.floor(column / period) % 2 == 1))
        | ((pattern == 3) & (f.u > 0))
        | ((pattern == 4) & (np.abs(f.u) < 0.5 * torso_hw) & (f.y >= f.at(0.25)) & (f.y < f.at(0.42)))
    )


def _body_masks(
    f: _Frame, ident: dict[str, np.ndarray], pids: np.ndarray, height: int, width: int
) -> dict[str, np.ndarray]:
    """Boolean (n, H, W) masks of the body parts, the bag and the top's pattern."""
    y, u, at = f.y, f.u, f.at
    head_ry = 0.075 * f.scale
    head_cy = at(0.085)
    head = ((y - head_cy) / head_ry) ** 2 + (u * (height / width) / (head_ry * 2.0)) ** 2 <= 1.0
    long_hair = _col(ident["long_hair"][pids]) > 0
    hair = (head & (y < head_cy - 0.25 * head_ry)) | (
        long_hair & (y >= head_cy) & (y < at(0.26)) & (np.abs(u) < 0.11 * f.scale) & (u < -0.02)
    )
    shoulder_hw = 0.24 * f.build
    t_torso = np.clip((y - at(0.17)) / (0.38 * f.scale), 0, 1)
    torso_hw = shoulder_hw * (1.0 - 0.15 * t_torso)
    torso = (y >= at(0.17)) & (y < at(0.55)) & (np.abs(u) < torso_hw)
    beside_torso = (np.abs(u) >= torso_hw) & (np.abs(u) < torso_hw + 0.08)
    arms = (y >= at(0.18)) & (y < at(0.5)) & beside_torso
    hands = (y >= at(0.5)) & (y < at(0.55)) & beside_torso
    t_leg = np.clip((y - at(0.55)) / (0.4 * f.scale), 0, 1)
    leg_off = 0.1 * f.build + f.spread * t_leg
    leg_hw = 0.075 * f.build
    leg_rows = (y >= at(0.55)) & (y < at(0.95))
    legs = leg_rows & ((np.abs(u + leg_off) < leg_hw) | (np.abs(u - leg_off) < leg_hw))
    bag = (
        (_col(ident["bag"][pids]) > 0) & (y >= at(0.36)) & (y < at(0.56)) & (u > torso_hw + 0.02) & (u < torso_hw + 0.2)
    )
    return {
        "head": head,
        "hair": hair,
        "torso": torso,
        "arms": arms,
        "hands": hands,
        "legs": legs,
        "shins": legs & (y >= at(0.75)) & (_col(ident["shorts"][pids]) > 0),
        "shoes": legs & (y >= at(0.91)),
        "bag": bag,
        "second": _top_pattern(f, ident, pids, torso, torso_hw, height, width),
    }


def _paint(
    masks: dict[str, np.ndarray],
    ident: dict[str, np.ndarray],
    pids: np.ndarray,
    background: np.ndarray,
    jitter: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """The figures painted over their camera's background, back to front (a later layer covers an earlier one)."""
    n = int(pids.shape[0])
    j = np.float32(jitter)
    light = rng.normal(0.0, 6.0 * j, (n, 3)).astype(np.float32)  # per-image lighting of the person
    img = background + rng.normal(0.0, 6.0 * j, (n, 1, 1, 1)).astype(np.float32)
    m = masks
    layers = [
        (m["legs"], ident["lower"][pids] + light),
        (m["shins"] | m["hands"], ident["skin"][pids]),
        (m["shoes"], ident["shoes"][pids]),
        (m["torso"] | m["arms"], ident["upper"][pids] + light),
        (m["second"], ident["second"][pids] + light),
        (m["bag"], ident["bag_colour"][pids]),
        (m["head"], ident["skin"][pids]),
        (m["hair"], ident["hair"][pids]),
    ]
    for mask, colour in layers:  # loop over the 8 layers; each is vectorised over the block
        img = np.where(mask[..., None], _rgb(colour), img)
    return img


def _camera_effects(
    img: np.ndarray, cams: np.ndarray, cam: dict[str, np.ndarray], y: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Colour cast, brightness and an illumination ramp, blur and sensor noise of each image's camera; uint8."""
    img = img * cam["gain"][cams][:, None, None, :] + cam["offset"][cams][:, None, None, None]
    img = img + cam["light"][cams][:, None, None, None] * (y[..., None] - 0.5)
    for c in np.unique(cams):  # loop over cameras (few); each body is vectorised over the camera's images
        sigma = float(cam["blur"][c])
        if sigma > 0.05:
            sel = cams == c
            img[sel] = gaussian_filter(img[sel], sigma=(0.0, sigma, sigma, 0.0), mode="nearest")
    img += rng.standard_normal(img.shape, dtype=np.float32) * cam["noise"][cams][:, None, None, None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _draw_block(
    pids: np.ndarray,
    cams: np.ndarray,
    ident: dict[str, np.ndarray],
    cam: dict[str, np.ndarray],
    height: int,
    width: int,
    jitter: float,
    rng: np.random.Generator,
) -> np.ndarray:
    frame = _frame(pids, cams, ident, cam, height, width, jitter, rng)
    masks = _body_masks(frame, ident, pids, height, width)
    img = _paint(masks, ident, pids, cam["background"][cams], jitter, rng)
    return _camera_effects(img, cams, cam, frame.y, rng)


def _generate(
    num_ids: int, num_cams: int, lo: int, hi: int, height: int, width: int, seed: int, knobs: _Knobs
) -> SynthReIDArrays:
    rng = np.random.default_rng(seed)
    ident = _identity_params(num_ids, knobs.family_size, rng)
    cam = _camera_params(num_cams, height, width, knobs.camera_strength, rng)
    pids, cams = _layout(num_ids, num_cams, lo, hi, rng)
    images = np.empty((pids.shape[0], height, width, 3), dtype=np.uint8)
    for start in range(0, pids.shape[0], _BLOCK):  # blocks of images
        stop = start + _BLOCK
        images[start:stop] = _draw_block(
            pids[start:stop], cams[start:stop], ident, cam, height, width, knobs.pose_jitter, rng
        )
    return SynthReIDArrays(images, pids.astype(np.int64), cams.astype(np.int64))


def synthreid_arrays(
    *,
    num_ids: int = 100,
    num_cams: int = 6,
    images_per_id_per_cam: tuple[int, int] = (2, 5),
    height: int = 64,
    width: int = 32,
    rng: int | np.random.Generator | None = 0,
    family_size: int = 3,
    camera_strength: float = 0.3,
    pose_jitter: float = 1.0,
) -> SynthReIDArrays:
    """Generate SynthReID images in memory (no files).

    Parameters
    ----------
    num_ids : int, default 100
        Number of identities.
    num_cams : int, default 6
        Number of cameras (>= 2).
    images_per_id_per_cam : (int, int), default (2, 5)
        Inclusive range of the number of images of an identity in each camera that sees it.
    height, width : int, default 64, 32
        Image size in pixels (>= 16 x 8).
    rng : int, numpy.random.Generator or None, default 0
        Randomness: an int ``>= 0`` is the seed (the same arguments always give the same
        images); a Generator, or None for fresh entropy, draws one int seed first.
    family_size : int, default 3
        Identities per look-alike family (>= 1). Members of a family wear the same upper and
        lower colours, each shifted by a little (Gaussian, standard deviation 10 of 255), and
        differ in the pattern of the top (all different for families of up to five), its
        second colour, shorts, bag, hair and build. 1: every identity draws its own colours.
    camera_strength : float in [0, 2], default 0.3
        Scale of every camera nuisance: colour cast (per-channel gain ``1 ± 0.4 s``),
        brightness offset (``± 35 s``), top-to-bottom illumination ramp (``± 50 s``), Gaussian
        blur (sigma up to ``1.2 s`` px), extra sensor noise (std ``2 + 6 s`` at most), viewpoint
        (distance: scale down to ``1 - 0.12 s``; position: shift ``± 0.06 s`` of the width;
        walking direction mirrored in half of the cameras when ``s > 0``) and how much of the
        camera's own textured background replaces a shared plain one (``min(s, 1)``). 0: every
        camera renders alike (only sensor noise of std 2). At the default, the features of an
        untrained tiny CNN retrieve across cameras poorly (mAP around 0.2) while the
        identities stay learnable; at 1 the camera dominates every untrained representation.
    pose_jitter : float in [0, 1], default 1.0
        Scale of the per-image variation: position (``± 0.08`` of the width), scale (down to
        ``-12 %``), leg spread, build (``± 6 %``), crop (top margin ``± 0.025`` of the height),
        lighting of the person (std 6) and of the background (std 6). 0: the images of one
        identity in one camera differ only by sensor noise.

    Returns
    -------
    SynthReIDArrays
        Named tuple ``(images, pids, cams)``: ``images`` uint8 (N, height, width, 3) RGB,
        ``pids`` int64 in 0..num_ids-1, ``cams`` int64 in 0..num_cams-1, sorted by pid then
        camera.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If an argument is out of range.

    Notes
    -----
    Each identity is seen by a uniformly drawn number of 2..num_cams cameras, chosen at
    random, with ``images_per_id_per_cam`` images in each; the expected size is about
    ``num_ids * (num_cams + 2) / 2 * mean(images_per_id_per_cam)``. Identities ``f *
    family_size .. (f + 1) * family_size - 1`` form family ``f``. Version 2 of the generator
    (labelrefine 0.x, ``meta.json`` ``format_version`` 2) draws other images than version 1
    for the same seed.

    Examples
    --------
    >>> images, pids, cams = synthreid_arrays(num_ids=4, num_cams=3, rng=1)
    >>> images.dtype, images.shape[1:]
    (dtype('uint8'), (64, 32, 3))
    >>> bool(all(len(set(cams[pids == p])) >= 2 for p in range(4)))
    True
    """
    num_ids, num_cams, (lo, hi), height, width, seed, knobs = _check_args(
        num_ids, num_cams, images_per_id_per_cam, height, width, rng, family_size, camera_strength, pose_jitter
    )
    return _generate(num_ids, num_cams, lo, hi, height, width, seed, knobs)


_SPLIT_FOLDERS = ("bounding_box_train", "query", "bounding_box_test")


def _check_write_args(
    root: Any, num_ids: int, query_fraction: Any, image_format: Any, overwrite: Any
) -> tuple[float, str]:
    """The arguments only make_synthreid has: (query_fraction, image_format)."""
    if num_ids < 2:
        raise ValueError(f"num_ids must be >= 2 (half train, half test identities), got {num_ids}")
    query_fraction = check_probability(query_fraction, "query_fraction")
    image_format = check_choice(image_format, "image_format", ("jpg", "png"))
    if not isinstance(overwrite, (bool, np.bool_)):
        raise TypeError(f"overwrite must be a bool, got {type(overwrite).__name__}")
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path (str or os.PathLike), got {type(root).__name__}")
    return query_fraction, image_format


def _read_meta(meta_file: Path) -> Any:
    """The recorded arguments of a dataset on disk, or None (missing or unreadable)."""
    if not meta_file.is_file():
        return None
    try:
        return json.loads(meta_file.read_text())
    except (OSError, ValueError):
        return None


def _reuse_or_clear(target: Path, meta: dict[str, Any], overwrite: bool) -> bool:
    """True when ``target`` already holds this dataset; otherwise clear what a write would replace."""
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"root must not hold a file named SynthReID, got {str(target)!r}")
    if not target.exists():
        return False
    meta_file = target / "meta.json"
    if _read_meta(meta_file) == meta and all((target / f).is_dir() for f in _SPLIT_FOLDERS):
        return True
    if any(target.iterdir()) and not overwrite:
        raise FileExistsError(
            f"root must not already hold another dataset: {str(target)!r} exists and was not written by "
            "make_synthreid with these arguments; pass overwrite=True to replace it"
        )
    for folder in _SPLIT_FOLDERS:
        if (target / folder).is_dir():
            shutil.rmtree(target / folder)
    meta_file.unlink(missing_ok=True)
    return False


def _split_of(pids: np.ndarray, cams: np.ndarray, num_ids: int, query_fraction: float, seed: int) -> np.ndarray:
    """Split per image: 0 train (the first half of the identities), 1 query, 2 gallery.

    In each test identity, the first image of ``round(query_fraction * m)`` random cameras of
    its ``m`` (at least 1, at most m - 1) is a query, so every query has a match in another camera.
    """
    n = int(pids.shape[0])
    split = np.where(pids < num_ids // 2, 0, 2)
    rng = np.random.default_rng([seed, 1])
    first = np.ones(n, dtype=bool)
    first[1:] = (pids[1:] != pids[:-1]) | (cams[1:] != cams[:-1])
    group_pid = pids[first]  # one entry per (pid, camera) group, sorted by pid
    m = np.bincount(group_pid, minlength=num_ids)
    n_query = np.clip(np.rint(query_fraction * m), 1, m - 1)
    order = np.lexsort((rng.random(int(group_pid.shape[0])), group_pid))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0]) - np.searchsorted(group_pid, group_pid[order])
    chosen = np.flatnonzero(first)[(rank < n_query[group_pid]) & (group_pid >= num_ids // 2)]
    split[chosen] = 1
    return split


def _file_names(split: np.ndarray, pids: np.ndarray, cams: np.ndarray, image_format: str) -> list[str]:
    """Market-1501 names ``{folder}/{pid + 1:04d}_c{cam + 1}s1_{frame:06d}_01.{format}``, frame = image index."""
    n = int(pids.shape[0])
    names = np.char.add(np.array([f + "/" for f in _SPLIT_FOLDERS])[split], np.char.zfill((pids + 1).astype(str), 4))
    names = np.char.add(np.char.add(names, "_c"), (cams + 1).astype(str))
    names = np.char.add(np.char.add(names, "s1_"), np.char.zfill(np.arange(n).astype(str), 6))
    return np.char.add(names, f"_01.{image_format}").tolist()


def make_synthreid(
    root: str | os.PathLike[str],
    *,
    num_ids: int = 100,
    num_cams: int = 6,
    images_per_id_per_cam: tuple[int, int] = (2, 5),
    height: int = 64,
    width: int = 32,
    rng: int | np.random.Generator | None = 0,
    family_size: int = 3,
    camera_strength: float = 0.3,
    pose_jitter: float = 1.0,
    query_fraction: float = 0.5,
    image_format: str = "jpg",
    overwrite: bool = False,
) -> Path:
    """Write a SynthReID dataset in the Market-1501 layout and return its folder.

    Parameters
    ----------
    root : str or os.PathLike
        Parent folder; the dataset is written to ``root/SynthReID/`` with the sub-folders
        ``bounding_box_train``, ``query`` and ``bounding_box_test`` and a ``meta.json``.
    num_ids, num_cams, images_per_id_per_cam, height, width, rng
        As in :func:`synthreid_arrays` (the images are exactly those, pid ``p`` written as
        ``p + 1`` since Market-1501 reserves ``0000`` for distractors).
    query_fraction : float, default 0.5
        For each test identity seen by ``m`` cameras, ``round(query_fraction * m)`` of its
        cameras (at least 1, at most ``m - 1``) give one image to ``query``; the rest of its
        images form the gallery, so every query has a gallery match from another camera.
    image_format : {"jpg", "png"}, default "jpg"
        File format (JPEG quality 95, or lossless PNG).
    overwrite : bool, default False
        Replace an existing dataset written with other arguments.

    Returns
    -------
    pathlib.Path
        ``root/SynthReID``; read it with :func:`labelrefine.data.read_synthreid` or
        ``load_dataset("synthreid", root)``.

    Raises
    ------
    FileExistsError
        If ``root/SynthReID`` holds files other than a dataset written with the same
        arguments and ``overwrite`` is False.
    TypeError, ValueError
        If an argument is invalid.

    Notes
    -----
    Identities ``0 .. num_ids // 2 - 1`` form the training split and the others the test
    split (disjoint, as in Market-1501). File names follow Market-1501:
    ``{pid:04d}_c{cam}s1_{frame:06d}_01.jpg`` with 1-based cameras and a unique frame number.
    A call with the same arguments as the dataset already on disk returns at once without
    writing (``meta.json`` records the arguments; it is written last, so an interrupted
    write is not mistaken for a complete one).

    Examples
    --------
    >>> import tempfile
    >>> path = make_synthreid(tempfile.mkdtemp(), num_ids=6, num_cams=3, rng=0)
    >>> sorted(p.name for p in path.iterdir())
    ['bounding_box_test', 'bounding_box_train', 'meta.json', 'query']
    """
    num_ids, num_cams, (lo, hi), height, width, seed, knobs = _check_args(
        num_ids, num_cams, images_per_id_per_cam, height, width, rng, family_size, camera_strength, pose_jitter
    )
    query_fraction, image_format = _check_write_args(root, num_ids, query_fraction, image_format, overwrite)
    target = Path(root) / "SynthReID"
    meta = {
        "generator": "labelrefine.data.make_synthreid",
        "format_version": _FORMAT_VERSION,
        "num_ids": num_ids,
        "num_cams": num_cams,
        "images_per_id_per_cam": [lo, hi],
        "height": height,
        "width": width,
        "seed": seed,
        "family_size": knobs.family_size,
        "camera_strength": knobs.camera_strength,
        "pose_jitter": knobs.pose_jitter,
        "query_fraction": float(query_fraction),
        "image_format": image_format,
    }
    Image = import_optional("PIL.Image")
    if _reuse_or_clear(target, meta, overwrite):
        return target
    images, pids, cams = _generate(num_ids, num_cams, lo, hi, height, width, seed, knobs)
    split = _split_of(pids, cams, num_ids, query_fraction, seed)
    for folder in _SPLIT_FOLDERS:
        (target / folder).mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"quality": 95} if image_format == "jpg" else {"compress_level": 1}
    for img, name in zip(images, _file_names(split, pids, cams, image_format), strict=True):  # one call per image
        Image.fromarray(img).save(target / name, **options)
    (target / "meta.json").write_text(json.dumps(meta, indent=1))  # last: a complete dataset has it
    return target
