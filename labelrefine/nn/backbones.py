"""Re-ID backbones: torchvision ResNets with IBN-a, GeM pooling and a BN-neck.

:func:`build_backbone` returns a :class:`ReIDNet`, whose ``forward`` returns embeddings:

* **train mode** (``model.train()``): the BN-neck output, not normalised (``train_output="neck"``,
  the default, what Cluster-Contrast feeds its memory; :class:`~labelrefine.nn.ClusterMemory`
  normalises it), or the pooled features before the BN-neck (``train_output="pool"``);
* **eval mode** (``model.eval()``): the BN-neck output, L2-normalised (rows of unit norm).

Without a BN-neck (``bnneck=False``) the neck is the identity in both modes. Weights are never
downloaded: ``pretrained`` is a local state-dict file (torchvision or IBN-Net key names).
"""

from __future__ import annotations

import math
import os
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .._optional import import_optional
from .._validation import check_bool, check_int, check_real

__all__ = ["BACKBONES", "IBN", "GeM", "LoadResult", "ReIDNet", "build_backbone", "load_pretrained"]

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
_POOLINGS = ("avg", "gem")
_TRAIN_OUTPUTS = ("neck", "pool")
_SHOWN = 10  # keys listed per category in messages


class IBN(nn.Module):
    """IBN-a normalisation (Pan et al. 2018): InstanceNorm on the first channels, BatchNorm on the rest.

    Parameters
    ----------
    planes : int
        Number of channels.
    ratio : float, default 0.5
        Fraction of channels (rounded down) normalised by the affine InstanceNorm.

    Notes
    -----
    Submodules are named ``IN`` and ``BN`` as in the IBN-Net checkpoints
    (``layer1.0.bn1.IN.weight``, ``layer1.0.bn1.BN.running_mean``...).

    Examples
    --------
    >>> import torch
    >>> IBN(8)(torch.randn(2, 8, 4, 4)).shape
    torch.Size([2, 8, 4, 4])
    """

    def __init__(self, planes: int, ratio: float = 0.5) -> None:
        super().__init__()
        planes = check_int(planes, "planes", low=2)
        ratio = check_real(ratio, "ratio", low=0.0, high=1.0, open_low=True, open_high=True)
        # not `self.half`: that would shadow nn.Module.half(), the float16 conversion
        self.half_channels = max(1, min(int(planes * ratio), int(planes) - 1))
        self.IN = nn.InstanceNorm2d(self.half_channels, affine=True)
        self.BN = nn.BatchNorm2d(int(planes) - self.half_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, rest = torch.split(x, [self.half_channels, x.shape[1] - self.half_channels], dim=1)
        return torch.cat([self.IN(first.contiguous()), self.BN(rest.contiguous())], dim=1)


class GeM(nn.Module):
    """Generalised-mean pooling with a learnable exponent: ``mean(clamp(x, eps) ** p) ** (1 / p)``.

    Parameters
    ----------
    p : float, default 3.0
        Initial exponent (a learnable parameter); p = 1 is average pooling, large p tends to max.
    eps : float, default 1e-6
        Lower clamp of the activations.

    Examples
    --------
    >>> import torch
    >>> GeM(p=1.0)(torch.ones(2, 5, 3, 3)).shape
    torch.Size([2, 5])
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        p = check_real(p, "p", low=0.0, high=math.inf, open_low=True, open_high=True)
        self.p = nn.Parameter(torch.full((1,), float(p)))
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.to(x.dtype)
        return x.clamp(min=self.eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)

    def extra_repr(self) -> str:
        return f"p={float(self.p.detach()[0]):.4g}, eps={self.eps}"


class ReIDNet(nn.Module):
    """Embedding network: ``base`` -> pooling -> BN-neck; see the module docstring for outputs.

    Parameters
    ----------
    base : nn.Module
        Feature extractor. With a ``pool`` it must return (B, C, H, W) maps; without one,
        (B, D) embeddings.
    num_features : int or None
        Embedding dimension D (``None`` only without a BN-neck).
    pool : nn.Module or None, default None
        Pooling from (B, C, H, W) to (B, C), e.g. :class:`GeM`.
    bnneck : bool, default True
        Add a ``BatchNorm1d(num_features)`` neck whose bias is frozen at 0 (BNNeck, Luo et al.).
    train_output : {"neck", "pool"}, default "neck"
        What ``forward`` returns in train mode: the BN-neck output (Cluster-Contrast) or the
        pooled features before it.

    Attributes
    ----------
    num_features : int or None
        Embedding dimension.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = ReIDNet(nn.Linear(10, 4), num_features=4).eval()
    >>> torch.allclose(net(torch.randn(3, 10)).norm(dim=1), torch.ones(3))
    True
    """

    def __init__(
        self,
        base: nn.Module,
        num_features: int | None,
        *,
        pool: nn.Module | None = None,
        bnneck: bool = True,
        train_output: str = "neck",
    ) -> None:
        super().__init__()
        if not isinstance(base, nn.Module):
            raise TypeError(f"base must be a torch.nn.Module, got {type(base).__name__}")
        if num_features is not None:
            num_features = check_int(num_features, "num_features", low=1)
        if bnneck and num_features is None:
            raise ValueError("bnneck=True needs num_features (the embedding dimension), got num_features=None")
        if train_output not in _TRAIN_OUTPUTS:
            choices = ", ".join(map(repr, _TRAIN_OUTPUTS))
            raise ValueError(f"train_output must be one of {choices}; got {train_output!r}")
        self.base = base
        self.pool = pool
        self.num_features = None if num_features is None else int(num_features)
        self.train_output = train_output
        if bnneck and num_features is not None:  # bnneck without num_features was refused above
            neck = nn.BatchNorm1d(int(num_features))
            nn.init.ones_(neck.weight)
            nn.init.zeros_(neck.bias)
            neck.bias.requires_grad_(False)
            self.neck: nn.Module = neck
        else:
            self.neck = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, D) of a batch; normalised in eval mode (see the module docstring)."""
        x = self.base(x)
        if self.pool is not None:
            x = self.pool(x).flatten(1)
        if x.ndim != 2:
            raise ValueError(f"the base network must produce (batch, features) embeddings, got shape {tuple(x.shape)}")
        y = self.neck(x)
        if self.training:
            return y if self.train_output == "neck" else x
        return F.normalize(y, dim=1)


class LoadResult(NamedTuple):
    """Outcome of :func:`load_pretrained`: model keys not in the file, file keys not used."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _listing(title: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    more = f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return f"{title} ({len(keys)}): {shown}{more}"


def _read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            "pretrained must be None or the path of a local state-dict file (labelrefine never downloads "
            f"weights), got {path!r}"
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained file not found: {os.fspath(path)!r}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for unreadable files
        raise ValueError(
            f"pretrained file {os.fspath(path)!r} could not be read as a torch state dict "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if (
        not isinstance(obj, Mapping)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        raise ValueError(
            f"pretrained file {os.fspath(path)!r} must hold a state dict (a mapping of parameter names to "
            f"tensors), got {type(obj).__name__}"
        )
    state = {}
    for key, value in obj.items():
        while key.startswith("module."):
            key = key[len("module.") :]
        state[key] = value
    return state


def load_pretrained(model: ReIDNet, path: str | os.PathLike[str], *, strict: bool = True) -> LoadResult:
    """Load a local checkpoint into a :class:`ReIDNet` built by :func:`build_backbone`.

    Accepted files: a backbone state dict with torchvision or IBN-Net key names
    (``conv1.weight``, ``layer1.0.bn1.IN.weight``...), or a whole ``ReIDNet`` state dict
    (keys starting with ``base.``), possibly wrapped as ``{"state_dict": ...}`` or
    ``{"model": ...}``. ``module.`` prefixes (DataParallel / DDP) are stripped and the ImageNet
    classifier ``fc.*`` is dropped.

    Parameters
    ----------
    model : ReIDNet
        The model to load into (its ``base`` holds the backbone).
    path : str or os.PathLike
        Local file read with ``torch.load(path, map_location="cpu", weights_only=True)``.
    strict : bool, default True
        Raise when a backbone parameter is missing, a key is unexpected or a shape differs.
        With ``False`` such keys are skipped with a warning that lists them.

    Returns
    -------
    LoadResult
        ``missing_keys``: model keys the file did not provide (for a backbone file these
        include the new head, e.g. ``neck.weight``, ``pool.p``, which never make loading
        fail, nor do ``num_batches_tracked`` counters absent from old checkpoints);
        ``unexpected_keys``: file keys that the model does not have (after dropping ``fc.*``).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    TypeError
        If ``path`` is not a path or ``model`` not a ReIDNet.
    ValueError
        If the file is not a readable state dict, or (``strict=True``) keys or shapes do
        not match; the message lists the keys.

    Examples
    --------
    >>> import os, tempfile, torch, torchvision
    >>> path = os.path.join(tempfile.mkdtemp(), "r18.pth")
    >>> torch.save(torchvision.models.resnet18().state_dict(), path)
    >>> model = build_backbone("resnet18")
    >>> load_pretrained(model, path).missing_keys
    ['neck.weight', 'neck.bias', 'neck.running_mean', 'neck.running_var', 'neck.num_batches_tracked']
    """
    if not isinstance(model, ReIDNet):
        raise TypeError(f"model must be a ReIDNet (from build_backbone), got {type(model).__name__}")
    state = _read_state_dict(path)
    if not any(k.startswith("base.") for k in state):
        state = {f"base.{k}": v for k, v in state.items() if not (k == "fc" or k.startswith("fc."))}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        for k in state
        if k in own and state[k].shape != own[k].shape
    ]
    fatal_missing = [k for k in missing if k.startswith("base.") and not k.endswith("num_batches_tracked")]
    problems = [
        _listing(title, keys)
        for title, keys in (
            ("missing backbone keys", fatal_missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if keys
    ]
    if problems:
        text = f"pretrained file {os.fspath(path)!r} does not match the model: " + "; ".join(problems)
        if strict:
            raise ValueError(text + ". Pass strict=False to load the matching keys anyway.")
        warnings.warn(text + "; loading the matching keys only.", UserWarning, stacklevel=2)
    usable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict(usable, strict=False)
    return LoadResult(missing_keys=missing, unexpected_keys=unexpected)


def _set_last_stride(layer4: nn.Sequential, stride: int) -> None:
    block: Any = layer4[0]  # a torchvision BasicBlock or Bottleneck
    conv = block.conv2 if hasattr(block, "conv3") else block.conv1  # Bottleneck strides conv2 (v1.5)
    conv.stride = (stride, stride)
    if block.downsample is not None:
        block.downsample[0].stride = (stride, stride)


def _check_user_module_options(**given: tuple[Any, Any]) -> None:
    """A user module takes none of the ResNet options: each (value, default) must keep its default."""
    for option, (value, default) in given.items():
        if value is not default and value != default:
            hint = " (use ReIDNet(module, num_features=D) for a BN-neck)" if option == "bnneck" else ""
            raise ValueError(
                f"{option} applies to torchvision ResNets only and must keep its default ({default!r}) for "
                f"a user module, got {value!r}{hint}"
            )


def _check_resnet_options(name: Any, last_stride: Any, pooling: Any, pretrained: Any) -> None:
    """The ResNet name, stride, pooling and checkpoint path, with the messages of :func:`build_backbone`."""
    if not isinstance(name, str):
        raise TypeError(f"name must be one of {', '.join(BACKBONES)} or a torch.nn.Module, got {type(name).__name__}")
    if name not in BACKBONES:
        raise ValueError(f"name must be one of {', '.join(map(repr, BACKBONES))} or a torch.nn.Module; got {name!r}")
    if isinstance(last_stride, bool) or last_stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {last_stride!r}")
    if pooling not in _POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(map(repr, _POOLINGS))}; got {pooling!r}")
    if pretrained is not None and not isinstance(pretrained, (str, os.PathLike)):
        raise TypeError(
            "pretrained must be None or the path of a local state-dict file (labelrefine never downloads "
            f"weights), got {pretrained!r}"
        )


def build_backbone(
    name: str | nn.Module,
    *,
    pretrained: str | os.PathLike[str] | None = None,
    last_stride: int = 1,
    pooling: str = "avg",
    ibn: bool = False,
    bnneck: bool | None = None,
    train_output: str = "neck",
    strict: bool = True,
) -> ReIDNet:
    """Build a Re-ID embedding network (see the module docstring for what it returns).

    Parameters
    ----------
    name : {"resnet18", "resnet34", "resnet50", "resnet101"} or nn.Module
        A torchvision ResNet (random initialisation unless ``pretrained``), or any module
        mapping an image batch to (B, D) embeddings, wrapped as is (only the eval-mode L2
        normalisation is added; the ResNet options below must keep their defaults).
    pretrained : str or os.PathLike, optional
        Local checkpoint loaded with :func:`load_pretrained` (nothing is downloaded).
    last_stride : {1, 2}, default 1
        Stride of the first block of ``layer4``; 1 doubles the final map size (Re-ID practice).
    pooling : {"avg", "gem"}, default "avg"
        Global average pooling or :class:`GeM` with a learnable exponent.
    ibn : bool, default False
        IBN-a: the first normalisation of every block in ``layer1``-``layer3`` becomes an
        :class:`IBN` (half InstanceNorm, half BatchNorm), as Pan et al.
    bnneck : bool, optional
        BN-neck after pooling; default ``True`` for ResNets and ``False`` for a user module
        (whose embedding size is unknown here: use ``ReIDNet(module, num_features=D)`` for
        a neck).
    train_output : {"neck", "pool"}, default "neck"
        Train-mode output: the BN-neck output (Cluster-Contrast) or the pooled features.
    strict : bool, default True
        Passed to :func:`load_pretrained`.

    Returns
    -------
    ReIDNet
        ``num_features`` is 512 for ResNet-18/34 and 2048 for ResNet-50/101.

    Raises
    ------
    ValueError
        On an unknown name or option value, or options that do not apply to a user module.
    TypeError
        If ``name`` is neither a string nor a module, or ``pretrained`` not a path.
    FileNotFoundError
        If ``pretrained`` does not exist.

    Examples
    --------
    >>> import torch
    >>> model = build_backbone("resnet18", pooling="gem").eval()
    >>> with torch.no_grad():
    ...     emb = model(torch.randn(2, 3, 64, 32))
    >>> emb.shape
    torch.Size([2, 512])
    """
    if isinstance(name, nn.Module):
        _check_user_module_options(
            pretrained=(pretrained, None),
            last_stride=(last_stride, 1),
            pooling=(pooling, "avg"),
            ibn=(ibn, False),
            bnneck=(bnneck, None),
        )
        return ReIDNet(name, None, pool=None, bnneck=False, train_output=train_output)
    _check_resnet_options(name, last_stride, pooling, pretrained)
    ibn = check_bool(ibn, "ibn")
    bnneck = None if bnneck is None else check_bool(bnneck, "bnneck")
    models = import_optional("torchvision.models")
    resnet = getattr(models, name)(weights=None)
    _set_last_stride(resnet.layer4, int(last_stride))
    if ibn:
        for layer in (resnet.layer1, resnet.layer2, resnet.layer3):
            for block in layer:
                block.bn1 = IBN(block.bn1.num_features)
    base = nn.Sequential(
        OrderedDict(
            (part, getattr(resnet, part))
            for part in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        )
    )
    pool: nn.Module = GeM() if pooling == "gem" else nn.AdaptiveAvgPool2d(1)
    model = ReIDNet(
        base,
        resnet.fc.in_features,
        pool=pool,
        bnneck=True if bnneck is None else bnneck,
        train_output=train_output,
    )
    if pretrained is not None:
        load_pretrained(model, pretrained, strict=strict)
    return model
