"""Torch adapter for training: cluster memory, gradient reversal, backbones, feature extraction.

Import it explicitly (``import labelrefine.nn``); ``import labelrefine`` never imports torch.
State lives in registered buffers and is changed by explicit calls (``reset``, ``update``,
``set_lambda``); nothing here calls ``.cuda()``: modules follow the device and dtype of their
inputs (move them with ``.to()``). Helpers in :mod:`labelrefine.nn.distributed` make the memory
update and feature extraction correct under DistributedDataParallel.
"""

from .._optional import import_optional

import_optional("torch")  # a clear message naming the extra when torch is missing

from .backbones import BACKBONES, IBN, GeM, LoadResult, ReIDNet, build_backbone, load_pretrained  # noqa: E402
from .batchnorm import GlobalBatchNorm, convert_batchnorm  # noqa: E402
from .distributed import (  # noqa: E402
    all_gather_tensor,
    broadcast_object,
    gather_tensor,
    get_rank,
    get_world_size,
    is_distributed,
    is_main_process,
    sharded_knn,
)
from .features import extract_features  # noqa: E402
from .grl import CameraClassifier, GradientReversal, camera_domain_loss, gradient_reversal, grl_lambda  # noqa: E402
from .memory import ClusterMemory, cluster_centroids  # noqa: E402

__all__ = [
    "BACKBONES",
    "IBN",
    "CameraClassifier",
    "ClusterMemory",
    "GeM",
    "GlobalBatchNorm",
    "GradientReversal",
    "LoadResult",
    "ReIDNet",
    "all_gather_tensor",
    "broadcast_object",
    "build_backbone",
    "camera_domain_loss",
    "cluster_centroids",
    "convert_batchnorm",
    "extract_features",
    "gather_tensor",
    "get_rank",
    "get_world_size",
    "gradient_reversal",
    "grl_lambda",
    "is_distributed",
    "is_main_process",
    "load_pretrained",
    "sharded_knn",
]
