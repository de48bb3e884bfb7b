"""Encoders of the recipe and the train-time network (encoder + camera classifier)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..._validation import check_choice
from ...nn import CameraClassifier, ReIDNet
from .backbones import BACKBONES
from .config import ModelConfig
from .runtime import load_torch_file

__all__ = [
    "ResidualMLP",
    "TinyCNN",
    "TrainNet",
    "build_encoder",
    "load_encoder_state",
    "mlp_encoder",
    "tiny_cnn_encoder",
]


class ResidualMLP(nn.Module):
    """``x + W2 relu(BN(W1 x))`` with ``W2`` initialised to zero: the untrained output is the input.

    The ``"mlp"`` backbone over feature vectors (synthetic data): like an ImageNet-initialised
    network, training starts from meaningful (camera-biased) features.

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(4, 8)
    >>> torch.equal(ResidualMLP(8, 16).eval()(x), x)
    True
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, dim)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.relu(self.bn(self.fc1(x))))


class TinyCNN(nn.Module):
    """Three conv-BN-ReLU blocks (widths w, 2w, 4w; two 2x2 max-pools): the ``"tiny-cnn"`` backbone.

    Examples
    --------
    >>> import torch
    >>> TinyCNN(8)(torch.randn(2, 3, 32, 16)).shape
    torch.Size([2, 32, 8, 4])
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for i, out in enumerate((width, 2 * width, 4 * width)):
            layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            if i < 2:
                layers.append(nn.MaxPool2d(2))
            channels = out
        self.body = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def build_encoder(config: ModelConfig, input_dim: int | None = None) -> ReIDNet:
    """The encoder named by the ``model`` section's ``backbone`` (a :class:`labelrefine.nn.ReIDNet`).

    Built by the builder registered under that name in
    :data:`labelrefine.recipes.calr.backbones.BACKBONES`: ResNets come from
    :func:`labelrefine.nn.build_backbone` (``pretrained`` loaded there); the small backbones
    load ``pretrained`` as a state dict of the whole encoder.
    """
    builder = BACKBONES[check_choice(config.backbone, "model.backbone", tuple(BACKBONES))]
    return cast(ReIDNet, builder(config, input_dim))


def mlp_encoder(config: ModelConfig, input_dim: int | None) -> ReIDNet:
    """The ``"mlp"`` backbone: a :class:`ResidualMLP` over ``input_dim`` features, with a BN-neck."""
    if input_dim is None:
        raise ValueError("model.backbone='mlp' needs the input feature dimension")
    return load_encoder_state(ReIDNet(ResidualMLP(input_dim, config.mlp_hidden), input_dim, bnneck=True), config)


def tiny_cnn_encoder(config: ModelConfig, input_dim: int | None = None) -> ReIDNet:
    """The ``"tiny-cnn"`` backbone: a :class:`TinyCNN` with average pooling and a BN-neck."""
    base = TinyCNN(config.cnn_width)
    return load_encoder_state(ReIDNet(base, base.out_channels, pool=nn.AdaptiveAvgPool2d(1), bnneck=True), config)


def load_encoder_state(model: ReIDNet, config: ModelConfig) -> ReIDNet:
    """Load ``config.pretrained`` (a state dict of the whole encoder, or a checkpoint's ``encoder``) into ``model``."""
    if config.pretrained is not None:
        path = Path(config.pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained file not found: {str(path)!r}")
        state = load_torch_file(path, "pretrained file", weights_only=True)
        model.load_state_dict(state.get("encoder", state) if isinstance(state, dict) else state)
    return model


class TrainNet(nn.Module):
    """Encoder plus optional camera classifier, one module so that DDP synchronises both.

    The classifier sees the L2-normalised embedding, as the memory does (and as the authors'
    model, built with ``norm=True``): on unnormalised embeddings the reversed gradient can
    maximise the camera loss by inflating the embedding, which destroys it.
    """

    def __init__(self, encoder: nn.Module, classifier: CameraClassifier | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        emb = self.encoder(x)
        return emb, (self.classifier(F.normalize(emb, dim=1)) if self.classifier is not None else None)
