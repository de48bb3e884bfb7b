"""The backbone registry of the recipe: ``model.backbone`` name -> encoder builder (imports no torch).

A builder is ``builder(model, input_dim) -> labelrefine.nn.ReIDNet``: ``model`` is the config's
:class:`~labelrefine.recipes.calr.config.ModelConfig` section, ``input_dim`` the feature
dimension of vector data (``None`` for images). It loads ``model.pretrained`` itself
(``labelrefine.recipes.calr.models.load_encoder_state`` loads a state dict of the whole
encoder). ``labelrefine.recipes.calr.models.build_encoder`` dispatches through
:data:`BACKBONES`, the config checks ``model.backbone`` against it, so one builder and one
:func:`register_backbone` add a backbone::

    from labelrefine.nn import ReIDNet
    from labelrefine.recipes.calr.backbones import register_backbone

    def linear(model, input_dim):
        return ReIDNet(torch.nn.Linear(input_dim, input_dim), input_dim, bnneck=True)

    register_backbone("linear", linear)  # then --set model.backbone=linear
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..._validation import check_choice

if TYPE_CHECKING:
    from .config import ModelConfig

__all__ = ["BACKBONES", "BackboneBuilder", "register_backbone", "unregister_backbone"]

BackboneBuilder = Callable[["ModelConfig", "int | None"], Any]
"""``builder(model, input_dim) -> labelrefine.nn.ReIDNet``."""

_BACKBONES: dict[str, BackboneBuilder] = {}
BACKBONES: Mapping[str, BackboneBuilder] = types.MappingProxyType(_BACKBONES)
"""The registry, name -> builder (read-only; :func:`register_backbone` adds one)."""


def register_backbone(name: str, builder: BackboneBuilder, *, replace: bool = False) -> None:
    """Add ``builder`` under ``name`` (``ValueError`` when taken, unless ``replace``).

    Examples
    --------
    >>> register_backbone("mine", lambda model, input_dim: None)
    >>> "mine" in BACKBONES
    True
    >>> unregister_backbone("mine")
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if not callable(builder):
        raise TypeError(f"builder must be callable, got {builder!r}")
    if name in _BACKBONES and not replace:
        raise ValueError(f"name {name!r} is already a registered backbone; pass replace=True to replace it")
    _BACKBONES[name] = builder


def unregister_backbone(name: str) -> None:
    """Remove the backbone ``name`` (``ValueError`` for an unknown name)."""
    check_choice(name, "name", tuple(_BACKBONES))
    del _BACKBONES[name]


def _resnet(model: ModelConfig, input_dim: int | None) -> Any:
    """A torchvision ResNet of :func:`labelrefine.nn.build_backbone` (``pretrained`` loaded there)."""
    from ...nn import build_backbone

    return build_backbone(model.backbone, pretrained=model.pretrained, pooling=model.pooling, ibn=model.ibn)


def _mlp(model: ModelConfig, input_dim: int | None) -> Any:
    from .models import mlp_encoder

    return mlp_encoder(model, input_dim)


def _tiny_cnn(model: ModelConfig, input_dim: int | None) -> Any:
    from .models import tiny_cnn_encoder

    return tiny_cnn_encoder(model, input_dim)


# the names of labelrefine.nn.BACKBONES (which imports torch; tests check the two agree)
for _name in ("resnet18", "resnet34", "resnet50", "resnet101"):
    register_backbone(_name, _resnet)
register_backbone("mlp", _mlp)
register_backbone("tiny-cnn", _tiny_cnn)
del _name
