"""The catalogue of the CALR recipe: presets, where every setting comes from, and their tables.

:data:`SETTINGS` holds what the paper and the authors' released code say of every setting,
:data:`DEFAULT_SOURCES` the source of each stage default, :data:`PRESETS` the presets (each
naming the row of the paper it targets and the source of its own values).
:func:`preset_settings` and :func:`settings_markdown` (the table of ``docs/presets.md``) read
them. See CONTRIBUTING.md for the rules of what may be attributed to the paper.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...._validation import check_choice
from ._base import config_keys
from .schema import config_class

__all__ = [
    "DEFAULT_SOURCES",
    "PRESETS",
    "SETTINGS",
    "Preset",
    "Setting",
    "get_preset",
    "preset_settings",
    "settings_markdown",
]

# # where every setting comes from

# A number or choice attributed to the paper (CALR, Li et al.) is quoted from it with its
# section, table and row; where the paper is silent the source is the authors' released code
# (github.com/leeBooMla/CALR, commit 919e36ce: inter_camera_training.py, intra_camera_training.py,
# their README) or our own choice with its reason. See CONTRIBUTING.md.

_RVP = "as documented in docs/reference-vs-paper.md"


@dataclass(frozen=True)
class Setting:
    """One recipe setting, what the paper says about it and what the authors' released code uses.

    Attributes
    ----------
    key : str
        The config key: ``section.key``, or a top-level field such as ``report_epoch``.
    stages : tuple of str
        The stages whose config has it (``"intra"``, ``"inter"``).
    paper : str
        What the paper states, with its section, equation or table; "silent" where it says nothing.
    authors : str
        What the authors' released code uses, and where.
    """

    key: str
    stages: tuple[str, ...]
    paper: str
    authors: str


_BOTH = ("intra", "inter")
_INTRA = ("intra",)
_INTER = ("inter",)

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "model.backbone",
        _BOTH,
        "ResNet-50 pre-trained on ImageNet (Sec. IV-A)",
        "`-a resnet50` (README; default of inter_camera_training.py)",
    ),
    Setting(
        "model.ibn",
        _BOTH,
        "IBN-ResNet50 for the CALR(IBN) and CALR(IBN+GeMPool) rows (Table I caption)",
        "`-a resnet_ibn50a` for IBN (README; default of intra_camera_training.py)",
    ),
    Setting(
        "model.pooling",
        _BOTH,
        "global average pooling, then BN and L2 (Sec. IV-A); GeM for the IBN+GeMPool rows (Table I caption)",
        "`--pooling-type gem` (both scripts)",
    ),
    Setting("data.height", _BOTH, "256 x 128 for persons, 224 x 224 for VeRi-776 (Sec. IV-A)", "the same (README)"),
    Setting("data.width", _BOTH, "256 x 128 for persons, 224 x 224 for VeRi-776 (Sec. IV-A)", "the same (README)"),
    Setting("augment.flip_p", _BOTH, "silent", "`RandomHorizontalFlip(p=0.5)` (get_train_loader)"),
    Setting("augment.pad", _BOTH, "silent", "`Pad(10)` then `RandomCrop` (get_train_loader)"),
    Setting("augment.erasing_p", _BOTH, "silent", "`RandomErasing(probability=0.5)` (get_train_loader)"),
    Setting("optim.optimizer", _BOTH, "Adam (Sec. IV-A)", "Adam"),
    Setting("optim.lr", _BOTH, "silent", "`--lr 0.00035`"),
    Setting("optim.weight_decay", _BOTH, "5e-4 (Sec. IV-A)", "`--weight-decay 5e-4`"),
    Setting("optim.lr_step", _BOTH, "silent", "`StepLR`, `--step-size 20`"),
    Setting("optim.lr_gamma", _BOTH, "silent", "`StepLR(..., gamma=0.1)`"),
    Setting("optim.batch_size", _INTRA, "silent", "`-b 64` (intra_camera_training.py; README example: `-b 256`)"),
    Setting("optim.batch_size", _INTER, "silent", "`-b 256`"),
    Setting("optim.num_instances", _INTRA, "silent", "`--num-instances 4`"),
    Setting("optim.num_instances", _INTER, "silent", "`--num-instances 16`"),
    Setting("optim.iters_per_epoch", _INTRA, "silent", "`--iters 100`"),
    Setting(
        "optim.iters_per_epoch",
        _INTER,
        "silent",
        "README: `--iters 200` for Market-1501, `--iters 400` for the other datasets",
    ),
    Setting(
        "optim.epochs",
        _INTRA,
        "20 epochs of intra-camera training (Sec. IV-A)",
        "`--epochs 25` (script default; README example: `--epochs 20`)",
    ),
    Setting("optim.epochs", _INTER, "50 epochs of inter-camera training (Sec. IV-A)", "`--epochs 50`"),
    Setting("optim.temperature", _BOTH, "tau = 0.1 (Sec. IV-A)", "`--temp 0.05` (both scripts)"),
    Setting("optim.momentum", _BOTH, "m = 0.2 (Sec. IV-A, Eq. 2)", "`--momentum 0.1` (both scripts)"),
    Setting(
        "optim.memory_mode",
        _BOTH,
        "Eq. 2, one update per query",
        "Cluster-Contrast's memory: one update per sample in batch order (`--use-hard` off)",
    ),
    Setting(
        "camera_clustering.method",
        _INTRA,
        "agglomerative hierarchical clustering [68] (Sec. IV-A); no distance or linkage named",
        f"agglomerative clustering of the Jaccard distance, average linkage, {_RVP}",
    ),
    Setting(
        "camera_clustering.agglomerative.images_per_cluster",
        _INTRA,
        "num_images / 5 clusters per camera (Sec. IV-A)",
        "the same",
    ),
    Setting("camera_clustering.agglomerative.k1", _INTRA, "silent (no distance named)", "Jaccard `--k1 15`"),
    Setting("camera_clustering.agglomerative.k2", _INTRA, "silent (no distance named)", "Jaccard `--k2 4`"),
    Setting("clustering.method", _INTER, "Infomap [63] (Sec. III-A, IV-A)", "Infomap (`cluster_by_infomap`)"),
    Setting(
        "clustering.k",
        _INTER,
        "top_15(i), the 15 closest neighbours of i, in the pivot score (Eq. 4); Infomap's graph: silent",
        "`--k1 15`: a faiss search of 15 columns, the sample included, for Infomap and the score",
    ),
    Setting(
        "clustering.infomap.k_includes_self",
        _INTER,
        "no: the 15 closest neighbours of i (Eq. 4)",
        "yes (15 columns with the sample)",
    ),
    Setting("clustering.min_sim", _INTER, "silent", "`--eps 0.5`, passed to Infomap as `min_sim`"),
    Setting(
        "clustering.infomap.min_size",
        _INTER,
        "silent",
        "`--k2 4`: Infomap clusters of at most 4 images become outliers",
    ),
    Setting(
        "clustering.dbscan.eps",
        _INTER,
        "silent (DBSCAN is not used)",
        "not used (the released run clusters with Infomap)",
    ),
    Setting(
        "clustering.dbscan.min_samples",
        _INTER,
        "silent (DBSCAN is not used)",
        "not used (the released run clusters with Infomap)",
    ),
    Setting("clustering.dbscan.k1", _INTER, "silent (DBSCAN is not used)", "`--D_k1 30` (unused by the Infomap run)"),
    Setting("clustering.dbscan.k2", _INTER, "silent (DBSCAN is not used)", "`--D_k2 6` (unused by the Infomap run)"),
    Setting("refinement.enabled", _INTER, "label refinement with local clusters, Eq. 5 (Sec. III-C)", "on"),
    Setting(
        "refinement.rule",
        _INTER,
        "every sample whose score is above the mean score is a pivot (Sec. III-C)",
        f"one pivot per cluster, its last above-mean member (`node_flag=1`), {_RVP}",
    ),
    Setting(
        "refinement.schedule",
        _INTER,
        "cosine decay of p is best (Table IV)",
        "p = 1 at every epoch (`decay = 1`; the cosine line is commented out)",
    ),
    Setting("refinement.p_start", _INTER, "Eq. 5 is stated for p = 1 (Sec. III-C)", "1"),
    Setting("refinement.p_end", _INTER, "silent", "p stays 1"),
    Setting(
        "refinement.p_span",
        _INTER,
        "silent (no period of the cosine given)",
        "3 in the commented-out line `0.5*(1+cos(pi*epoch/(3*epochs)))`",
    ),
    Setting("refinement.p_power", _INTER, "silent (Table IV names a polynomial decay, no power)", "not used"),
    Setting("refinement.p_rate", _INTER, "silent (Table IV names an exponential decay, no rate)", "not used"),
    Setting("alignment.enabled", _INTER, "camera domain alignment, Eq. 7-9 (Sec. III-C, III-D)", "on"),
    Setting(
        "alignment.beta",
        _INTER,
        "beta = 1.0 gives the highest mAP (Table V, Sec. IV-D)",
        f"no beta: the domain loss is added with weight 1, {_RVP}",
    ),
    Setting("alignment.grl_lambda", _INTER, "lambda, no value given (Eq. 7)", f"lambda = 1, {_RVP}"),
    Setting("alignment.grl_schedule", _INTER, "silent", "constant"),
    Setting(
        "alignment.epochs",
        _INTER,
        "no limit: Eq. 9 is the objective of the inter-camera training (Sec. III-D)",
        f"the first 3 epochs (`if epoch < 3` in calr/trainers.py), {_RVP}",
    ),
    Setting(
        "alignment.cam_hidden",
        _INTER,
        "silent (a domain classifier D)",
        f"three layers of width 100 with dropout, {_RVP}",
    ),
    Setting("alignment.cam_lr_mult", _INTER, "silent", "one Adam and one learning rate for all parameters"),
    Setting("refinement.cacl", _INTER, "w_i follows [62] (Eq. 6)", "`log(1 + H)` cluster weights"),
    Setting(
        "refinement.cacl_warmup", _INTER, "silent (no warm-up named)", "uniform weights for epochs 0-4 (`if epoch < 5`)"
    ),
    Setting(
        "report_epoch",
        _INTER,
        "silent",
        "the epoch of the best test-set mAP (`model_best.pth.tar`)",
    ),
)

_OUR_MEMORY = "our choice: one vectorised step towards each cluster's batch mean (docs/reference-vs-paper.md)"

# sources of the stage defaults ("stage.key" before "key")
DEFAULT_SOURCES: Mapping[str, str] = types.MappingProxyType(
    {
        "model.backbone": "paper, Sec. IV-A (ResNet-50)",
        "model.ibn": "paper, Sec. IV-A (ResNet-50)",
        "model.pooling": "paper, Sec. IV-A (global average pooling)",
        "data.height": "paper, Sec. IV-A (256 x 128 for persons)",
        "data.width": "paper, Sec. IV-A (256 x 128 for persons)",
        "augment.flip_p": "authors' code, get_train_loader (paper silent)",
        "augment.pad": "authors' code, get_train_loader (paper silent)",
        "augment.erasing_p": "authors' code, get_train_loader (paper silent)",
        "optim.optimizer": "paper, Sec. IV-A (Adam)",
        "optim.lr": "authors' code, --lr (paper silent)",
        "optim.weight_decay": "paper, Sec. IV-A",
        "optim.lr_step": "authors' code, --step-size (paper silent)",
        "optim.lr_gamma": "authors' code, StepLR gamma (paper silent)",
        "intra.optim.batch_size": "authors' code, intra_camera_training.py -b (paper silent)",
        "inter.optim.batch_size": "authors' code, inter_camera_training.py -b (paper silent)",
        "intra.optim.num_instances": "authors' code, intra_camera_training.py --num-instances (paper silent)",
        "inter.optim.num_instances": "authors' code, inter_camera_training.py --num-instances (paper silent)",
        "intra.optim.iters_per_epoch": "authors' code, intra_camera_training.py --iters (paper silent)",
        "inter.optim.iters_per_epoch": "authors' code, README: --iters 200 for Market-1501 (paper silent)",
        "intra.optim.epochs": "paper, Sec. IV-A",
        "inter.optim.epochs": "paper, Sec. IV-A",
        "optim.temperature": "paper, Sec. IV-A",
        "optim.momentum": "paper, Sec. IV-A",
        "optim.memory_mode": _OUR_MEMORY,
        "camera_clustering.method": "paper, Sec. IV-A (agglomerative hierarchical clustering)",
        "camera_clustering.agglomerative.images_per_cluster": "paper, Sec. IV-A (num_images / 5 clusters per camera)",
        "camera_clustering.agglomerative.k1": "authors' code, intra_camera_training.py --k1 (paper names no distance)",
        "camera_clustering.agglomerative.k2": "authors' code, intra_camera_training.py --k2 (paper names no distance)",
        "clustering.method": "paper, Sec. IV-A (Infomap)",
        "clustering.k": "paper, Eq. 4 (top_15)",
        "clustering.infomap.k_includes_self": "paper, Eq. 4 (the 15 closest neighbours of i)",
        "clustering.min_sim": "authors' code, --eps passed as min_sim (paper silent)",
        "clustering.infomap.min_size": (
            "our choice: drop singletons only (paper silent; the authors' code drops clusters of <= 4)"
        ),
        "clustering.dbscan.eps": "our choice: used only with clustering.method='dbscan' (paper silent)",
        "clustering.dbscan.min_samples": "our choice: used only with clustering.method='dbscan' (paper silent)",
        "clustering.dbscan.k1": "authors' code, --D_k1 (used only with clustering.method='dbscan')",
        "clustering.dbscan.k2": "authors' code, --D_k2 (used only with clustering.method='dbscan')",
        "refinement.enabled": "paper, Sec. III-C",
        "refinement.rule": "our choice: the library's measured default (benchmarks/refine_quality.py); "
        "the paper's text is the 'algorithm1' rule",
        "refinement.max_deviation": "our choice: measured in benchmarks/refine_quality.py (paper silent)",
        "refinement.schedule": "paper, Table IV (cosine, the best row)",
        "refinement.p_start": "paper, Sec. III-C (Eq. 5 stated for p = 1)",
        "refinement.p_end": "our choice: decay towards 0 (paper silent)",
        "refinement.p_span": "authors' code, the commented-out cosine line (paper gives no period)",
        "refinement.p_power": "our choice: used only with refinement.schedule='polynomial' (paper gives no power)",
        "refinement.p_rate": "our choice: used only with refinement.schedule='exponential' (paper gives no rate)",
        "alignment.enabled": "paper, Sec. III-C",
        "alignment.beta": "paper, Table V (highest mAP)",
        "alignment.grl_lambda": f"authors' code, {_RVP} (paper gives no value)",
        "alignment.grl_schedule": "authors' code, constant lambda (paper silent)",
        "alignment.epochs": f"authors' code, calr/trainers.py, {_RVP}",
        "alignment.cam_hidden": (
            "our choice: a two-layer classifier (paper silent; the authors' three-layer one is not offered)"
        ),
        "alignment.cam_lr_mult": "authors' code, one learning rate for all parameters (paper silent)",
        "refinement.cacl": "paper, Eq. 6 (w_i follows [62])",
        "refinement.cacl_warmup": "our choice: 10 epochs (paper names no warm-up; the authors' code uses 5)",
        "report_epoch": "our choice: the last epoch, no model selection on the test set (paper silent)",
    }
)


@dataclass(frozen=True)
class Preset:
    """Settings of one dataset and the row of the paper they target.

    Attributes
    ----------
    name : str
        Preset name (``--preset``).
    description : str
        One line.
    paper_table : str or None
        The table of the CALR paper whose row the preset targets.
    paper_map, paper_rank1 : float or None
        mAP and rank-1 (%) of that row, quoted from the paper; ``None`` where the preset
        targets no row.
    overrides : mapping
        ``section.key`` (or top-level key) to value, applied to every stage that has the key.
    stage_overrides : mapping
        Per-stage keys, ``{"intra": {...}, "inter": {...}}``.
    paper_row : str or None
        The row, as the table names it (``"CALR"``, ``"CALR(IBN+GeMPool)"``).
    family : {"paper", "authors", "cpu"}
        A row of the paper, the authors' released configuration, or a CPU preset.
    sources : mapping
        Where the preset's own values come from (``"key"`` or ``"stage.key"`` to a text that
        starts with ``paper``, ``authors' code`` or ``our choice``); the keys it does not set
        keep the source of the stage default (``DEFAULT_SOURCES``).
    """

    name: str
    description: str
    paper_table: str | None
    paper_map: float | None
    paper_rank1: float | None
    overrides: Mapping[str, Any]
    stage_overrides: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    paper_row: str | None = None
    family: str = "cpu"
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def values(self, stage: str) -> dict[str, Any]:
        """The keys this preset sets for ``stage``, filtered to that stage's keys."""
        known = set(config_keys(config_class(stage)))
        merged = {"preset": self.name, **self.overrides, **self.stage_overrides.get(stage, {})}
        return {key: value for key, value in merged.items() if key in known}

    def source(self, stage: str, key: str) -> str | None:
        """Where the value of ``key`` in ``stage`` comes from (``None`` for a key without one)."""
        for table in (self.sources, DEFAULT_SOURCES):
            for name in (f"{stage}.{key}", key):
                if name in table:
                    return table[name]
        return None

    @property
    def target(self) -> str:
        """The targeted row and its numbers, e.g. ``"Table I, CALR, Market1501: mAP 82.8, rank-1 92.5"``."""
        if self.paper_table is None:
            return "none (no row of the paper)"
        column = _PAPER_COLUMNS[self.overrides["data.dataset"]]
        return f"{self.paper_table}, {self.paper_row}, {column}: mAP {self.paper_map}, rank-1 {self.paper_rank1}"


# the column names of Tables I and II
_PAPER_COLUMNS = {"market1501": "Market1501", "dukemtmcreid": "DukeMTMC-ReID", "msmt17": "MSMT17", "veri": "Veri776"}
_DATASET_NAMES = {
    "market1501": "Market-1501",
    "dukemtmcreid": "DukeMTMC-reID",
    "msmt17": "MSMT17",
    "veri": "VeRi-776",
}

# (table, CALR row, its mAP and rank-1, IBN+GeM row, its mAP and rank-1): Table I and II of the paper
_PAPER_ROWS: dict[str, tuple[str, tuple[str, float, float], tuple[str, float, float]]] = {
    "market1501": ("Table I", ("CALR", 82.8, 92.5), ("CALR(IBN+GeMPool)", 84.5, 93.6)),
    "dukemtmcreid": ("Table I", ("CALR", 71.5, 82.7), ("CALR(IBN+GeMPool)", 74.2, 86.0)),
    "msmt17": ("Table I", ("CALR", 44.2, 73.0), ("CALR(IBN+GeMPool)", 50.4, 78.1)),
    "veri": ("Table II", ("CALR", 42.9, 88.7), ("CALR(IBN+GEM)", 44.8, 91.6)),
}


def _dataset_values(dataset: str, family: str) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """(overrides, sources, stage-2 overrides) that every preset of a real dataset shares."""
    overrides: dict[str, Any] = {"data.dataset": dataset}
    sources: dict[str, str] = {}
    inter: dict[str, Any] = {}
    if dataset == "veri":
        overrides.update({"data.height": 224, "data.width": 224})
        size = "paper, Sec. IV-A" if family == "paper" else "authors' code, README"
        sources.update({key: f"{size} (224 x 224 for VeRi-776)" for key in ("data.height", "data.width")})
    if dataset != "market1501":
        inter["optim.iters_per_epoch"] = 400
        sources["inter.optim.iters_per_epoch"] = (
            "authors' code, README: --iters 400 for datasets other than Market-1501"
        )
    return overrides, sources, inter


def _paper_preset(dataset: str, ibn_gem: bool) -> Preset:
    table, calr_row, ibn_row = _PAPER_ROWS[dataset]
    row, mAP, rank1 = ibn_row if ibn_gem else calr_row
    overrides, sources, inter = _dataset_values(dataset, "paper")
    inter.update({"alignment.epochs": None, "refinement.cacl_warmup": 5, "refinement.rule": "algorithm1"})
    sources.update(
        {
            "alignment.epochs": "paper, Sec. III-D (Eq. 9, no epoch limit)",
            "refinement.cacl_warmup": "authors' code, `if epoch < 5` (paper names no warm-up)",
            "inter.refinement.rule": "paper, Sec. III-C and Algorithm 1 (Eq. 5 once per pivot), one reading: "
            "every pivot of a (cluster, camera) group must vouch (docs: reference-vs-paper)",
        }
    )
    if ibn_gem:
        overrides.update({"model.ibn": True, "model.pooling": "gem"})
        sources.update(
            {
                "model.ibn": f"paper, {table} row {row} (IBN-ResNet50)",
                "model.pooling": f"paper, {table} row {row} (GeM pooling)",
            }
        )
        model = "IBN-ResNet-50, GeM pooling"
    else:
        model = "ResNet-50, global average pooling"
    return Preset(
        f"{dataset}-ibn-gem" if ibn_gem else dataset,
        f"{_DATASET_NAMES[dataset]}, the paper's {row} row ({table}): {model}, tau and m of Sec. IV-A",
        table,
        mAP,
        rank1,
        types.MappingProxyType(overrides),
        types.MappingProxyType({"inter": inter}),
        paper_row=row,
        family="paper",
        sources=types.MappingProxyType(sources),
    )


def _authors_preset(dataset: str) -> Preset:
    overrides, sources, inter = _dataset_values(dataset, "authors")
    overrides.update(
        {
            "model.backbone": "resnet50",
            "model.ibn": False,
            "model.pooling": "gem",
            "optim.temperature": 0.05,
            "optim.momentum": 0.1,
        }
    )
    inter.update(
        {
            "refinement.rule": "reference",
            "refinement.schedule": "constant",
            "refinement.p_start": 1.0,
            "clustering.infomap.k_includes_self": True,
            "clustering.infomap.min_size": 4,
            "alignment.epochs": 3,
            "refinement.cacl_warmup": 5,
            "report_epoch": "best",
        }
    )
    authors = {
        "model.backbone": "authors' code, README: -a resnet50",
        "model.ibn": "authors' code, README: -a resnet50",
        "model.pooling": "authors' code, --pooling-type gem",
        "optim.temperature": "authors' code, --temp",
        "optim.momentum": "authors' code, --momentum",
        "intra.optim.epochs": "authors' code, intra_camera_training.py --epochs (README example: 20)",
        "refinement.rule": "authors' code, cluster_by_infomap(node_flag=1)",
        "refinement.schedule": "authors' code, decay = 1",
        "refinement.p_start": "authors' code, decay = 1",
        "clustering.infomap.k_includes_self": "authors' code, faiss kNN of 15 columns with the sample",
        "clustering.infomap.min_size": "authors' code, --k2 4 passed to cluster_by_infomap",
        "alignment.epochs": f"authors' code, calr/trainers.py `if epoch < 3`, {_RVP}",
        "refinement.cacl_warmup": "authors' code, `if epoch < 5`",
        "report_epoch": "authors' code, reports model_best.pth.tar (best test-set mAP)",
        "alignment.beta": f"authors' code, domain loss added with weight 1, {_RVP}",
    }
    # values the paper and the authors' code share: named after the code in this family
    for key in ("optim.optimizer", "optim.weight_decay", "inter.optim.epochs", "camera_clustering.method"):
        authors.setdefault(key, "authors' code, the same as the paper")
    for key in ("camera_clustering.agglomerative.images_per_cluster", "clustering.method", "clustering.k"):
        authors.setdefault(key, "authors' code, the same as the paper")
    for key in ("refinement.enabled", "alignment.enabled"):
        authors.setdefault(key, "authors' code, the same as the paper")
    authors.setdefault("refinement.cacl", "authors' code, the same as the paper")
    authors.setdefault("data.height", "authors' code, README (256 x 128 for persons)")
    authors.setdefault("data.width", "authors' code, README (256 x 128 for persons)")
    authors.update(sources)
    return Preset(
        f"{dataset}-authors",
        f"{_DATASET_NAMES[dataset]}, the authors' released configuration (ResNet-50, GeM, their tau and momentum, "
        "p = 1, their pivots); no row of the paper states it",
        None,
        None,
        None,
        types.MappingProxyType(overrides),
        types.MappingProxyType({"intra": {"optim.epochs": 25}, "inter": inter}),
        family="authors",
        sources=types.MappingProxyType(authors),
    )


_CPU = "our choice: sized for a CPU run on generated data"


def _cpu_preset(
    name: str,
    description: str,
    overrides: dict[str, Any],
    stage_overrides: dict[str, Any],
    reasons: dict[str, str] | None = None,
) -> Preset:
    """A preset of generated data; its settings' source is ``_CPU`` unless ``reasons`` names another."""
    keys = {s.key for s in SETTINGS}
    sources = {key: _CPU for key in overrides if key in keys}
    for stage, values in stage_overrides.items():
        sources.update({f"{stage}.{key}": _CPU for key in values if key in keys})
    sources.update(reasons or {})
    return Preset(
        name,
        description,
        None,
        None,
        None,
        types.MappingProxyType(overrides),
        types.MappingProxyType(stage_overrides),
        sources=types.MappingProxyType(sources),
    )


PRESETS: dict[str, Preset] = {}
for _dataset in _PAPER_ROWS:
    for _preset in (_paper_preset(_dataset, False), _paper_preset(_dataset, True), _authors_preset(_dataset)):
        PRESETS[_preset.name] = _preset
PRESETS["synthreid"] = _cpu_preset(
    "synthreid",
    "SynthReID generated images with a tiny CNN from random weights: both stages on a laptop CPU in a few "
    "minutes, CALR above the baseline (benchmarks/ablation_synthreid.py)",
    {
        "data.dataset": "synthreid",
        "model.backbone": "tiny-cnn",
        "data.height": 64,
        "data.width": 32,
        "augment.pad": 4,
        "runtime.device": "auto",
        "runtime.num_workers": 0,
        "runtime.num_threads": 1,
        "runtime.test_batch_size": 128,
        "eval_every": 1,
        "optim.lr": 1e-3,
        "optim.lr_step": 12,
        "optim.temperature": 0.05,
        "synthetic.reid_ids": 120,
        "synthetic.reid_camera_strength": 0.25,
    },
    {
        "intra": {
            "optim.epochs": 5,
            "optim.iters_per_epoch": 20,
            "optim.batch_size": 32,
            "optim.num_instances": 4,
            "camera_clustering.agglomerative.images_per_cluster": 3,
        },
        "inter": {
            "optim.epochs": 16,
            "optim.iters_per_epoch": 30,
            "optim.batch_size": 64,
            "optim.num_instances": 4,
            "refinement.cacl_warmup": 2,
            "refinement.rule": "camera",
        },
    },
    {
        "inter.refinement.rule": "our choice: the rule of the measured ablation (benchmarks/ablation_synthreid.py); "
        "its stage 1 gives impure local clusters (precision about 0.7) of look-alikes",
    },
)
PRESETS["synthetic"] = _cpu_preset(
    "synthetic",
    "Camera-biased synthetic feature vectors with a small MLP: seconds per run, for tests and ablations",
    {
        "data.dataset": "synthetic",
        "model.backbone": "mlp",
        "optim.lr": 1e-3,
        "optim.lr_step": 100,
        "runtime.num_workers": 0,
        "runtime.num_threads": 1,
        "synthetic.camera_strength": 0.8,
        "synthetic.noise": 0.5,
        "runtime.test_batch_size": 1024,
        "augment.flip_p": 0.0,
        "augment.erasing_p": 0.0,
        "augment.pad": 0,
        "optim.momentum": 0.2,
        "optim.temperature": 0.05,
    },
    {
        "intra": {"optim.epochs": 3, "optim.iters_per_epoch": 10, "optim.batch_size": 32, "optim.num_instances": 4},
        "inter": {
            "optim.epochs": 6,
            "optim.iters_per_epoch": 20,
            "optim.batch_size": 64,
            "optim.num_instances": 4,
            "refinement.cacl_warmup": 2,
            "alignment.epochs": 1,
            "refinement.rule": "camera",
        },
    },
    {
        "inter.refinement.rule": "our choice: this preset's stage 1 gives 1 to 2 local clusters per person and "
        "camera with noisy features, where one pivot per group is the most precise and linking keeps look-alikes "
        "(docs/benchmarks.md, ablations)",
    },
)
del _dataset, _preset


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (see :data:`PRESETS`)."""
    return PRESETS[check_choice(name, "preset", tuple(PRESETS))]


# ----------------------------------------------------------------------------------------------
# tables


def _value_text(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def preset_settings(name: str) -> list[tuple[str, str, str, str]]:
    """Every setting of a preset with its source: ``(stage, key, value, source)`` rows.

    Examples
    --------
    >>> [row[::2] for row in preset_settings("market1501") if row[1] == "optim.temperature"]
    [('intra', '0.1'), ('inter', '0.1')]
    >>> preset_settings("market1501-authors")[0][1:]
    ('model.backbone', 'resnet50', "authors' code, README: -a resnet50")
    """
    from .loading import resolve_config

    preset = get_preset(name)
    configs = {stage: resolve_config(stage, preset=name) for stage in ("intra", "inter")}
    rows = []
    for setting in SETTINGS:
        for stage in setting.stages:
            value = configs[stage].get(setting.key)
            rows.append((stage, setting.key, _value_text(value), preset.source(stage, setting.key) or ""))
    rows.sort(key=lambda row: row[0] == "inter")  # stage 1 first, in the order of SETTINGS
    return rows


def _html(text: str) -> str:
    """Escape for HTML and turn `code` spans into ``<code>`` elements."""
    import html
    import re

    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text, quote=False))


def _family_cell(family: str, stage: str, key: str) -> list[str]:
    """The values of ``key`` over the presets of a family, each on one line and its source on the next."""
    from .loading import resolve_config

    groups: dict[tuple[str, str], list[str]] = {}
    for preset in PRESETS.values():
        if preset.family != family:
            continue
        value = _value_text(resolve_config(stage, preset=preset.name).get(key))
        groups.setdefault((value, preset.source(stage, key) or ""), []).append(preset.name)
    lines = []
    for (value, source), names in groups.items():
        which = "" if len(groups) == 1 else " (" + ", ".join(f"<code>{n}</code>" for n in names) + ")"
        lines += [f"<code>{_html(value)}</code>{which}:<br>", f"{_html(source)}<br>"]
    return lines


def settings_markdown() -> str:
    """The table of ``docs/presets.md``: every setting, what the paper says, what the authors' code uses, the presets.

    An HTML table with one cell per line, and a value and its source on separate lines (so that
    a line never mixes a preset's value with another's source). ``labelrefine-calr presets
    --markdown`` prints it.
    """
    head = ("stage", "setting", "paper", "authors' code", "paper presets", "authors' presets")
    lines = ["<table>", "<tr>" + "".join(f"<th>{_html(h)}</th>" for h in head) + "</tr>"]
    for setting in SETTINGS:
        for stage in setting.stages:
            lines += ["<tr>", f"<td>{stage}</td>", f"<td><code>{setting.key}</code></td>"]
            lines += [f"<td>{_html(setting.paper)}</td>", f"<td>{_html(setting.authors)}</td>"]
            for family in ("paper", "authors"):
                lines += ["<td>", *_family_cell(family, stage, setting.key), "</td>"]
            lines.append("</tr>")
    lines.append("</table>")
    return "\n".join(lines)
