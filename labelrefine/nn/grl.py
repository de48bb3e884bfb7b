"""Gradient reversal (Ganin & Lempitsky, DANN) and the camera classifier of CALR's domain loss.

``L = L_inter + beta * L_domain`` with ``L_domain = cross_entropy(CameraClassifier(feats), cams)``:
the classifier learns to predict the camera while the reversed gradient pushes the encoder to
make cameras indistinguishable. The reversal strength lambda lives in a buffer and is set
explicitly, typically from the DANN schedule :func:`grl_lambda`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_bool, check_int, check_probability, check_real

__all__ = ["CameraClassifier", "GradientReversal", "camera_domain_loss", "gradient_reversal", "grl_lambda"]


def _check_lambda(value: Any) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    return check_real(value, "lambd", low=-math.inf, high=math.inf, open_low=True, open_high=True)


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lambd: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(lambd)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (lambd,) = ctx.saved_tensors
        return -lambd.to(device=grad.device, dtype=grad.dtype) * grad, None


def gradient_reversal(x: torch.Tensor, lambd: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Identity in the forward pass, ``-lambd * grad`` in the backward pass.

    Parameters
    ----------
    x : torch.Tensor
        Any tensor.
    lambd : float or 0-d torch.Tensor, default 1.0
        Reversal strength (0 blocks the gradient, negative values do not reverse it).

    Returns
    -------
    torch.Tensor
        A view of ``x`` whose gradient is reversed and scaled.

    Raises
    ------
    TypeError
        If ``x`` is not a tensor.
    ValueError
        If ``lambd`` is not a finite real number.

    Examples
    --------
    >>> import torch
    >>> x = torch.ones(3, requires_grad=True)
    >>> gradient_reversal(x, 0.5).sum().backward()
    >>> x.grad
    tensor([-0.5000, -0.5000, -0.5000])
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not (isinstance(lambd, torch.Tensor) and lambd.ndim == 0):
        lambd = torch.tensor(_check_lambda(lambd))
    return _ReverseGrad.apply(x, lambd.detach().clone())


def grl_lambda(progress: float, gamma: float = 10.0) -> float:
    """DANN schedule for the reversal strength: ``2 / (1 + exp(-gamma * progress)) - 1``.

    Parameters
    ----------
    progress : float
        Training progress in [0, 1] (e.g. ``iteration / total_iterations``).
    gamma : float, default 10.0
        Steepness (> 0); Ganin et al. use 10.

    Returns
    -------
    float
        Lambda in [0, 1]: 0 at the start, close to 1 at the end.

    Raises
    ------
    ValueError
        If ``progress`` is outside [0, 1] or ``gamma`` is not positive.

    Examples
    --------
    >>> grl_lambda(0.0)
    0.0
    >>> round(grl_lambda(1.0), 4)
    0.9999
    """
    progress = check_probability(progress, "progress")
    gamma = check_real(gamma, "gamma", low=0.0, high=math.inf, open_low=True, open_high=True)
    return 2.0 / (1.0 + math.exp(-float(gamma) * float(progress))) - 1.0


class GradientReversal(nn.Module):
    """Gradient reversal layer with its strength in a buffer.

    Parameters
    ----------
    lambd : float, default 1.0
        Initial reversal strength; change it with :meth:`set_lambda`.

    Attributes
    ----------
    lambd : torch.Tensor
        0-d float32 buffer (saved in ``state_dict``).

    Examples
    --------
    >>> import torch
    >>> grl = GradientReversal()
    >>> grl.set_lambda(grl_lambda(0.5))
    >>> x = torch.ones(2, requires_grad=True)
    >>> grl(x).sum().backward()
    >>> bool((x.grad < 0).all())
    True
    """

    lambd: torch.Tensor

    def __init__(self, lambd: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("lambd", torch.tensor(_check_lambda(lambd), dtype=torch.float32))

    @torch.no_grad()
    def set_lambda(self, value: float) -> None:
        """Set the reversal strength (a finite real number).

        Parameters
        ----------
        value : float
            New lambda, e.g. ``grl_lambda(progress)``.

        Raises
        ------
        ValueError
            If ``value`` is not a finite real number.
        """
        self.lambd.fill_(_check_lambda(value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Identity; the gradient is multiplied by ``-lambd``."""
        return gradient_reversal(x, self.lambd)

    def extra_repr(self) -> str:
        return f"lambd={float(self.lambd):.4g}"


class CameraClassifier(nn.Module):
    """MLP from an embedding to camera logits, with an optional gradient reversal in front.

    ``num_layers`` linear layers; each hidden layer is ``Linear -> BatchNorm1d -> ReLU ->
    Dropout``. The output is raw logits: train it with :func:`camera_domain_loss` (one
    softmax).

    Parameters
    ----------
    in_features : int
        Embedding dimension.
    num_cameras : int
        Number of cameras (>= 2).
    hidden : int, default 256
        Width of the hidden layers.
    num_layers : int, default 2
        Number of linear layers (1 = a linear classifier).
    dropout : float, default 0.0
        Dropout probability after each hidden layer, in [0, 1).
    grl : bool, default True
        Put a :class:`GradientReversal` in front (adversarial domain loss). With ``False`` the
        classifier is an ordinary camera classifier.
    lambd : float, default 1.0
        Initial reversal strength when ``grl=True``.

    Examples
    --------
    >>> import torch
    >>> clf = CameraClassifier(16, num_cameras=3)
    >>> feats = torch.randn(8, 16, requires_grad=True)
    >>> loss = camera_domain_loss(clf(feats), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    >>> loss.backward()
    >>> feats.grad.shape
    torch.Size([8, 16])
    """

    def __init__(
        self,
        in_features: int,
        num_cameras: int,
        *,
        hidden: int = 256,
        num_layers: int = 2,
        dropout: float = 0.0,
        grl: bool = True,
        lambd: float = 1.0,
    ) -> None:
        super().__init__()
        for name, value, low in (
            ("in_features", in_features, 1),
            ("num_cameras", num_cameras, 2),
            ("hidden", hidden, 1),
            ("num_layers", num_layers, 1),
        ):
            check_int(value, name, low=low)
        dropout = check_real(dropout, "dropout", low=0.0, high=1.0, open_high=True)
        grl = check_bool(grl, "grl")
        self.num_cameras = int(num_cameras)
        self.grl = GradientReversal(lambd) if grl else None
        layers: list[nn.Module] = []
        width = int(in_features)
        for _ in range(int(num_layers) - 1):
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, self.num_cameras))
        self.mlp = nn.Sequential(*layers)

    def set_lambda(self, value: float) -> None:
        """Set the strength of the built-in gradient reversal.

        Parameters
        ----------
        value : float
            New lambda.

        Raises
        ------
        RuntimeError
            If the classifier was built with ``grl=False``.
        ValueError
            If ``value`` is not a finite real number.
        """
        if self.grl is None:
            raise RuntimeError("set_lambda needs a gradient reversal layer; this classifier was built with grl=False")
        self.grl.set_lambda(value)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Camera logits (B, num_cameras) for embeddings (B, in_features)."""
        if self.grl is not None:
            feats = self.grl(feats)
        return self.mlp(feats)


def camera_domain_loss(logits: torch.Tensor, cams: torch.Tensor) -> torch.Tensor:
    """Camera-classification loss: ``cross_entropy(logits, cams)``, a single softmax.

    Pass raw logits (no softmax before it): applying softmax and then cross-entropy would
    normalise twice. Reverse the gradient with :class:`GradientReversal` (or
    ``CameraClassifier(grl=True)``) to make the encoder camera-invariant.

    Parameters
    ----------
    logits : torch.Tensor, shape (B, num_cameras)
        Raw classifier outputs.
    cams : torch.Tensor of int, shape (B,)
        Camera index of each sample in ``0..num_cameras-1``.

    Returns
    -------
    torch.Tensor
        Scalar mean cross-entropy.

    Raises
    ------
    ValueError
        On wrong shapes or camera indices out of range.
    TypeError
        If ``cams`` is not integer.

    Examples
    --------
    >>> import torch
    >>> round(camera_domain_loss(torch.zeros(2, 4), torch.tensor([0, 3])).item(), 4)  # log(4)
    1.3863
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor (batch, num_cameras), got {type(logits).__name__}")
    if logits.ndim != 2:
        raise ValueError(f"logits must be a 2-D tensor (batch, num_cameras), got shape {tuple(logits.shape)}")
    if not isinstance(cams, torch.Tensor):
        cams = torch.as_tensor(cams)
    if cams.dtype == torch.bool or cams.is_floating_point() or cams.is_complex():
        raise TypeError(f"cams must hold integer camera indices, got dtype {cams.dtype}")
    if cams.ndim != 1 or cams.shape[0] != logits.shape[0]:
        raise ValueError(f"cams must have shape ({logits.shape[0]},) (one per row of logits), got {tuple(cams.shape)}")
    if cams.numel():
        lo, hi = (int(v) for v in cams.aminmax())
        if lo < 0 or hi >= logits.shape[1]:
            raise ValueError(f"cams must lie in [0, {logits.shape[1] - 1}], got values in [{lo}, {hi}]")
    return F.cross_entropy(logits, cams.to(logits.device).long())
