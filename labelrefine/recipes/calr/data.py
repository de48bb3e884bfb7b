"""Datasets of the recipe (the stage-1 label files are read and written by :mod:`labelrefine.io`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..._validation import check_cameras
from ...io import dataset_fingerprint, import_authors_local_labels, load_local_labels, save_local_labels
from .config import _Config, _TrainConfig
from .runtime import logger

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
    from ...synthetic import make_camera_biased

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
    from ...data import make_synthreid

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
    from ...data import ArrayDataset, ImageDataset, build_transforms, load_dataset

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
