"""Datasets of the recipe and the stage-1 output format (``local_labels.npz``, the authors' files)."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_cameras, check_labels, to_numpy
from ..io import align_by_name, dataset_fingerprint
from ._config import _Config, _TrainConfig
from ._runtime import logger

__all__ = [
    "RunData",
    "build_data",
    "import_authors_local_labels",
    "load_local_labels",
    "save_local_labels",
    "synthetic_splits",
]


@dataclass(frozen=True, eq=False)
class RunData:
    """What a stage trains and evaluates on.

    Attributes
    ----------
    name : str
        Dataset name.
    train_eval, train_aug : torch Dataset
        The training split with the test transform (feature extraction) and with the training
        augmentation. Items are dicts with ``img``, ``pid``, ``cam``, ``index``.
    query, gallery : torch Dataset or None
        Evaluation splits (``None`` when the dataset has none).
    train_pids, train_cams, train_keys : numpy.ndarray
        Per training sample: identity (only used to report cluster quality; -1 unknown), camera
        code ``0..C-1`` and a key (image path, or ``synthetic/<i>``).
    query_pids, query_cams, gallery_pids, gallery_cams : numpy.ndarray or None
        Evaluation labels.
    input_dim : int or None
        Feature dimension for the ``"mlp"`` backbone.
    fingerprint : str
        :func:`labelrefine.io.dataset_fingerprint` of the training images (and, for generated
        data, of the generator's arguments), saved with stage-1 labels and checked when they
        are read back.
    """

    name: str
    train_eval: Any
    train_aug: Any
    query: Any
    gallery: Any
    train_pids: np.ndarray
    train_cams: np.ndarray
    train_keys: np.ndarray
    query_pids: np.ndarray | None
    query_cams: np.ndarray | None
    gallery_pids: np.ndarray | None
    gallery_cams: np.ndarray | None
    input_dim: int | None = None
    fingerprint: str = ""

    @property
    def num_cams(self) -> int:
        return int(self.train_cams.max()) + 1 if self.train_cams.size else 0

    @property
    def identities_known(self) -> bool:
        return bool(self.train_pids.size) and bool((self.train_pids >= 0).any())

    @property
    def can_evaluate(self) -> bool:
        return self.query is not None and self.gallery is not None and len(self.query) > 0 and len(self.gallery) > 0


def synthetic_splits(config: _Config) -> dict[str, np.ndarray]:
    """Camera-biased features split into train / query / gallery by identity.

    Identities ``< synthetic.ids // 2`` train; for the others the first image of every (identity,
    camera) group is a query and the rest is the gallery, so every query has gallery matches in
    the identity's other cameras (each identity is seen by at least two).
    """
    from ..synthetic import make_camera_biased

    data = make_camera_biased(
        n_ids=config.synthetic.ids,
        n_cams=config.synthetic.cams,
        dim=config.synthetic.dim,
        family_size=config.synthetic.family_size,
        camera_strength=config.synthetic.camera_strength,
        noise=config.synthetic.noise,
        rng=config.synthetic.seed,
    )
    pids, cams = data.pids, data.cams
    train = pids < config.synthetic.ids // 2
    order = np.lexsort((np.arange(pids.size), cams, pids))
    first = np.ones(pids.size, dtype=bool)
    sorted_pc = np.stack([pids[order], cams[order]])
    first[1:] = (sorted_pc[:, 1:] != sorted_pc[:, :-1]).any(axis=0)
    is_first = np.zeros(pids.size, dtype=bool)
    is_first[order[first]] = True
    query = ~train & is_first
    gallery = ~train & ~is_first
    out = {}
    for name, mask in (("train", train), ("query", query), ("gallery", gallery)):
        out[f"{name}_feats"] = data.feats[mask]
        out[f"{name}_pids"] = pids[mask]
        out[f"{name}_cams"] = cams[mask]
    return out


def _fingerprint(config: _Config) -> str:
    """Short id of the synthetic data's parameters, in the sample keys so that labels of other data never match."""
    import hashlib

    g = config.synthetic
    values = [g.ids, g.cams, g.dim, g.camera_strength, g.noise, g.family_size, g.seed]
    return hashlib.sha1(repr(values).encode()).hexdigest()[:8]


def _generator_arguments(config: _Config) -> str:
    """The generator's arguments of a generated dataset ("" for data on disk), part of its fingerprint."""
    g = config.synthetic
    if config.data.dataset == "synthetic":
        return repr([g.ids, g.cams, g.dim, g.camera_strength, g.noise, g.family_size, g.seed])
    if config.data.dataset == "synthreid":
        return repr([g.reid_ids, g.reid_cams, g.reid_height, g.reid_width, g.reid_camera_strength, g.seed])
    return ""


def _synthreid_root(config: _Config) -> Path:
    """Generate SynthReID under ``data.root`` unless this very dataset is there (``meta.json`` says)."""
    from ..data import make_synthreid

    root = Path(config.data.root or "data")
    if not (root / "SynthReID").is_dir():
        logger.info(
            "generating SynthReID in %s (%d identities, %d cameras)",
            root / "SynthReID",
            config.synthetic.reid_ids,
            config.synthetic.reid_cams,
        )
    # returns at once when root/SynthReID holds a dataset of these arguments and generator version;
    # refuses (FileExistsError) a dataset of other arguments or of an older generator version
    make_synthreid(
        root,
        num_ids=config.synthetic.reid_ids,
        num_cams=config.synthetic.reid_cams,
        height=config.synthetic.reid_height,
        width=config.synthetic.reid_width,
        rng=config.synthetic.seed,
        camera_strength=config.synthetic.reid_camera_strength,
    )
    return root


def build_data(config: _Config, *, generate: bool = True) -> RunData:
    """Read (or generate) the dataset of ``config`` and wrap it in torch datasets.

    Raises
    ------
    ValueError
        ``data.root`` missing for a dataset on disk.
    FileNotFoundError
        The dataset folder is not where ``data.root`` says (the message shows the layout).
    """
    from ..data import ArrayDataset, ImageDataset, build_transforms, load_dataset

    if config.data.dataset == "synthetic":
        s = synthetic_splits(config)
        n = s["train_pids"].shape[0]
        train_cams = check_cameras(s["train_cams"], "cams")
        train = ArrayDataset(s["train_feats"], s["train_pids"], train_cams)
        keys = np.char.add(f"synthetic-{_fingerprint(config)}/", np.arange(n).astype(str))
        return RunData(
            name="synthetic",
            train_eval=train,
            train_aug=train,
            query=ArrayDataset(s["query_feats"], s["query_pids"], s["query_cams"]),
            gallery=ArrayDataset(s["gallery_feats"], s["gallery_pids"], s["gallery_cams"]),
            train_pids=s["train_pids"],
            train_cams=train_cams,
            train_keys=keys,
            query_pids=s["query_pids"],
            query_cams=s["query_cams"],
            gallery_pids=s["gallery_pids"],
            gallery_cams=s["gallery_cams"],
            input_dim=int(s["train_feats"].shape[1]),
            fingerprint=dataset_fingerprint(keys, extra=_generator_arguments(config)),
        )
    if config.data.dataset == "synthreid":
        root: Path = _synthreid_root(config) if generate else Path(config.data.root or "data")
    else:
        if config.data.root is None:
            raise ValueError(
                f"data.root is required for data.dataset={config.data.dataset!r}: pass --data-root DIR (the folder "
                "that holds the dataset's folder)"
            )
        root = Path(config.data.root)
        if not root.is_dir():
            raise FileNotFoundError(f"data.root {str(root)!r} is not a folder")
    reid = load_dataset(config.data.dataset, root)
    if len(reid.train) == 0:
        raise ValueError(f"dataset {config.data.dataset!r} under {str(root)!r} has no training images")
    test_t = build_transforms(config.data.height, config.data.width, train=False)
    train_t = test_t  # evaluation has no augmentation section
    if isinstance(config, _TrainConfig):
        aug = config.augment
        train_t = build_transforms(
            config.data.height, config.data.width, train=True, flip_p=aug.flip_p, pad=aug.pad, erasing_p=aug.erasing_p
        )
    cams = check_cameras(reid.train.cams, "cams")  # contiguous codes for the camera classifier
    return RunData(
        name=reid.name,
        train_eval=ImageDataset(reid.train.paths, reid.train.pids, cams, transform=test_t),
        train_aug=ImageDataset(reid.train.paths, reid.train.pids, cams, transform=train_t),
        query=ImageDataset.from_split(reid.query, test_t) if len(reid.query) else None,
        gallery=ImageDataset.from_split(reid.gallery, test_t) if len(reid.gallery) else None,
        train_pids=np.asarray(reid.train.pids),
        train_cams=cams,
        train_keys=np.asarray(reid.train.paths),
        query_pids=np.asarray(reid.query.pids) if len(reid.query) else None,
        query_cams=np.asarray(reid.query.cams) if len(reid.query) else None,
        gallery_pids=np.asarray(reid.gallery.pids) if len(reid.gallery) else None,
        gallery_cams=np.asarray(reid.gallery.cams) if len(reid.gallery) else None,
        fingerprint=dataset_fingerprint(reid.train.paths, extra=_generator_arguments(config)),
    )


# ----------------------------------------------------------------------------------------------
# local labels


def save_local_labels(path: str | Path, labels: Any, keys: Any, cams: Any, *, fingerprint: str = "") -> Path:
    """Write stage-1 labels as ``.npz`` with arrays ``labels`` (int64), ``keys`` (str), ``cams`` (int64).

    A non-empty ``fingerprint`` (:attr:`RunData.fingerprint`) is stored too, so that
    :func:`load_local_labels` refuses the labels on other data.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = save_local_labels(pathlib.Path(tempfile.mkdtemp()) / "local_labels.npz", [0, 1, -1], ["a", "b", "c"],
    ...                          [0, 0, 1])
    >>> load_local_labels(path, ["c", "a", "b"]).tolist()
    [-1, 0, 1]
    """
    labels = check_labels(labels, "labels")
    keys_arr = np.asarray(to_numpy(keys, "keys"), dtype=str)
    cams_arr = check_cameras(cams, "cams", n=labels.shape[0])
    if keys_arr.shape != labels.shape:
        raise ValueError(f"keys must have one entry per label ({labels.shape[0]}), got shape {keys_arr.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    arrays: dict[str, Any] = {"labels": labels, "keys": keys_arr, "cams": cams_arr}
    if fingerprint:
        arrays["fingerprint"] = np.asarray(fingerprint)
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def load_local_labels(path: str | Path, train_keys: Any, *, fingerprint: str = "") -> np.ndarray:
    """Read ``local_labels.npz`` (or a stage-1 run folder holding one), aligned with ``train_keys``.

    Keys are matched exactly, else by file name (datasets moved to another folder, see
    :func:`labelrefine.io.align_by_name`); training samples that the file does not list get -1.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        If it is not a labels file, no key matches, or the file stores a dataset fingerprint
        other than ``fingerprint`` (stage 1 ran on other data).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "local_labels.npz"
    if not path.is_file():
        raise FileNotFoundError(f"local_labels file not found: {str(path)!r}")
    try:
        data = np.load(path, allow_pickle=False)
        if not hasattr(data, "files") or "labels" not in data.files or "keys" not in data.files:
            raise ValueError(f"local_labels file {str(path)!r} must be a .npz archive with arrays 'labels' and 'keys'")
        with data:
            labels = check_labels(data["labels"], "labels")
            keys = np.asarray(data["keys"], dtype=str)
            stored = str(data["fingerprint"]) if "fingerprint" in data.files else ""
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(
            f"local_labels file {str(path)!r} cannot be read (truncated or not a .npz file): {exc}"
        ) from None
    except ValueError as exc:
        if "pickle" not in str(exc):
            raise
        raise ValueError(
            f"local_labels file {str(path)!r} is not a .npz archive of arrays (a pickle or a foreign file; pickles are "
            "never loaded)"
        ) from None
    if stored and fingerprint and stored != fingerprint:
        raise ValueError(
            f"local_labels file {str(path)!r} was written for other data (dataset fingerprint {stored}, this run's "
            f"data {fingerprint}): stage 1 ran on another dataset or another synthetic set (other synthetic.* "
            "settings or seed); run `labelrefine-calr intra` on this data, or pass its local_labels.npz"
        )
    return align_by_name(labels, keys, train_keys, source=f"local_labels file {str(path)!r}")


def import_authors_local_labels(files: Any, train_keys: Any) -> np.ndarray:
    """Local labels from the authors' released stage-1 output, aligned with ``train_keys``.

    The authors' intra-camera script saves, for each camera, ``np.array(pseudo_labeled_dataset)``:
    a string array of shape (n, 3) whose rows are ``(image path, local label, camera)`` for the
    images that were clustered (``-1`` images are left out).

    Parameters
    ----------
    files : path or sequence of paths
        ``.npy`` files (one per camera), or a folder searched recursively for them.
    train_keys : array-like of str
        Image paths of the training split, in training order; rows are matched by path, else by
        file name.

    Returns
    -------
    numpy.ndarray of int64
        One label per training image, unique across cameras (each file's ids are offset past the
        previous files'), -1 for images no file lists.

    Raises
    ------
    FileNotFoundError
        No file found.
    ValueError
        A file is not an (n, 3) array, its labels are not integers, or nothing matches.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(folder / "cam1.npy", np.array([("x/0001_c1_a.jpg", 0, 0), ("x/0002_c1_b.jpg", 0, 0)]))
    >>> np.save(folder / "cam2.npy", np.array([("x/0001_c2_c.jpg", 0, 1)]))
    >>> keys = ["/data/0001_c1_a.jpg", "/data/0001_c2_c.jpg", "/data/0002_c1_b.jpg", "/data/0003_c2_d.jpg"]
    >>> import_authors_local_labels(folder, keys).tolist()
    [0, 1, 0, -1]
    """
    if isinstance(files, (str, Path)):
        root = Path(files)
        paths = sorted(root.rglob("*.npy")) if root.is_dir() else [root]
    else:
        paths = [Path(f) for f in files]
    if not paths:
        raise FileNotFoundError(f"no .npy files of local labels found in {str(files)!r}")
    all_keys, all_labels = [], []
    offset = 0
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"local labels file not found: {str(path)!r}")
        try:
            rows = np.load(path, allow_pickle=False)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise ValueError(f"local labels file {str(path)!r} cannot be read as a .npy array: {exc}") from None
        if rows.ndim != 2 or rows.shape[1] != 3:
            raise ValueError(f"{str(path)!r} must hold an (n, 3) array of (path, label, camera) rows, got {rows.shape}")
        try:
            labels = rows[:, 1].astype(np.int64)
        except ValueError:
            raise ValueError(f"{str(path)!r}: the label column must hold integers") from None
        labels = np.where(labels >= 0, labels + offset, -1)
        offset = int(labels.max()) + 1 if (labels >= 0).any() else offset
        all_keys.append(rows[:, 0].astype(str))
        all_labels.append(labels)
    keys = np.concatenate(all_keys)
    source = f"authors' local labels ({len(paths)} file{'s' if len(paths) != 1 else ''})"
    return align_by_name(np.concatenate(all_labels), keys, train_keys, source=source)
