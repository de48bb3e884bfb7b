"""BatchNorm whose statistics are those of the global batch of all processes, on any device and backend."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["GlobalBatchNorm", "convert_batchnorm"]


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
    state dicts move freely between the two. Build it with the arguments of
    ``torch.nn.BatchNorm1d`` (it accepts inputs of any dimension >= 2), or convert a whole
    network with :func:`convert_batchnorm`.

    Examples
    --------
    >>> import torch
    >>> bn = GlobalBatchNorm(3)
    >>> x = torch.randn(8, 3, 4)
    >>> torch.allclose(bn(x), torch.nn.functional.batch_norm(x, None, None, training=True))
    True
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
    """BatchNorm layers with global-batch statistics: SyncBatchNorm on CUDA, :class:`GlobalBatchNorm` elsewhere.

    Parameters
    ----------
    net : torch.nn.Module
        A module holding BatchNorm layers; converted layers share its parameters and buffers.
    device : torch.device
        Where the module trains (``"cuda"`` gets ``torch.nn.SyncBatchNorm``).

    Returns
    -------
    torch.nn.Module
        The converted module (call before wrapping in DistributedDataParallel).

    Examples
    --------
    >>> import torch
    >>> net = convert_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm1d(4)), torch.device("cpu"))
    >>> type(net[0]).__name__
    'GlobalBatchNorm'
    """
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(net)
    return _to_global(net)
