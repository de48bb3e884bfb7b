"""Encoders of the recipe, the train-time network (encoder + camera classifier) and BatchNorm across processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..nn import CameraClassifier, ReIDNet, build_backbone
from ._config import _Common
from ._runtime import load_torch_file

__all__ = ["GlobalBatchNorm", "ResidualMLP", "TinyCNN", "TrainNet", "build_encoder", "convert_batchnorm"]


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


def build_encoder(config: _Common, input_dim: int | None = None) -> ReIDNet:
    """The encoder named by ``config.backbone`` (a :class:`labelrefine.nn.ReIDNet`).

    ResNets come from :func:`labelrefine.nn.build_backbone` (``pretrained`` loaded there); the
    small backbones load ``pretrained`` as a state dict of the whole encoder.
    """
    if config.backbone == "mlp":
        if input_dim is None:
            raise ValueError("backbone='mlp' needs the input feature dimension")
        model = ReIDNet(ResidualMLP(input_dim, config.mlp_hidden), input_dim, bnneck=True)
    elif config.backbone == "tiny-cnn":
        base = TinyCNN(config.cnn_width)
        model = ReIDNet(base, base.out_channels, pool=nn.AdaptiveAvgPool2d(1), bnneck=True)
    else:
        return build_backbone(config.backbone, pretrained=config.pretrained, pooling=config.pooling, ibn=config.ibn)
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


class _AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce (sum) over the default process group; gradients are summed too."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the batch of all processes together.

    ``torch.nn.SyncBatchNorm`` does this on GPUs only; this module does it on any device and
    backend (gloo on CPU) with two differentiable all-reduces (mean, then centred second moment,
    as the two-pass BatchNorm computes it). Outside a process group of size > 1, or in eval
    mode, it is an ordinary BatchNorm. Its parameters and buffers are those of BatchNorm, so
    state dicts move freely between the two.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input (batch, channels, ...), got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not (self.training and distributed):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float64)
        dist.all_reduce(count)
        n = float(count.item())
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        mean = _AllReduceSum.apply(xf.sum(dim=dims)) / n
        centred = xf - mean.view(shape)
        var = _AllReduceSum.apply(centred.pow(2).sum(dim=dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                tracked, running_mean, running_var = self.num_batches_tracked, self.running_mean, self.running_var
                # buffers whenever track_running_stats is on
                assert tracked is not None and running_mean is not None and running_var is not None
                tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(tracked)
                running_mean.mul_(1 - m).add_(mean.detach().to(running_mean.dtype), alpha=m)
                unbiased = var.detach() * (n / max(n - 1.0, 1.0))
                running_var.mul_(1 - m).add_(unbiased.to(running_var.dtype), alpha=m)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def _to_global(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        out = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:
            out.weight = module.weight
            out.bias = module.bias
        if module.track_running_stats:
            out.running_mean = module.running_mean
            out.running_var = module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _to_global(child))
    return out


def convert_batchnorm(net: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm layers with global-batch statistics: SyncBatchNorm on CUDA, :class:`GlobalBatchNorm` elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(net)
    return _to_global(net)
