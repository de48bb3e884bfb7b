"""Gradient reversal, the DANN schedule and the camera classifier."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch extra not installed")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from labelrefine.nn import (  # noqa: E402
    CameraClassifier,
    GradientReversal,
    camera_domain_loss,
    gradient_reversal,
    grl_lambda,
)


def _grads(lambd):
    """Gradient of the same scalar function of x with and without the reversal layer."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    w = torch.randn(3, 2, generator=g, dtype=torch.float64)
    plain = x.clone().requires_grad_(True)
    (torch.tanh(plain @ w) ** 2).sum().backward()
    rev = x.clone().requires_grad_(True)
    layer = GradientReversal(lambd)
    out = layer(rev)
    torch.testing.assert_close(out, rev)  # forward is the identity
    (torch.tanh(out @ w) ** 2).sum().backward()
    return plain.grad, rev.grad


@pytest.mark.parametrize("lambd", [0.0, 0.3, 1.0, 2.5, -1.0])
def test_gradient_is_minus_lambda_times_plain(lambd):
    plain, reversed_ = _grads(lambd)
    torch.testing.assert_close(reversed_, -lambd * plain)


def test_set_lambda_changes_backward_and_is_a_buffer():
    layer = GradientReversal()
    layer.set_lambda(0.25)
    assert "lambd" in layer.state_dict() and float(layer.lambd) == 0.25
    x = torch.ones(4, requires_grad=True)
    layer(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((4,), -0.25))


def test_set_lambda_between_forward_and_backward_uses_forward_value():
    layer = GradientReversal(0.5)
    x = torch.ones(2, requires_grad=True)
    y = layer(x).sum()
    layer.set_lambda(3.0)
    y.backward()
    torch.testing.assert_close(x.grad, torch.full((2,), -0.5))


def test_gradient_keeps_dtype():
    x = torch.ones(3, dtype=torch.float16, requires_grad=True)
    gradient_reversal(x, 2.0).float().sum().backward()
    assert x.grad.dtype == torch.float16
    torch.testing.assert_close(x.grad, torch.full((3,), -2.0, dtype=torch.float16))


@settings(max_examples=40, deadline=None)
@given(progress=st.floats(0.0, 1.0), gamma=st.floats(0.1, 50.0))
def test_grl_lambda_formula_and_range(progress, gamma):
    value = grl_lambda(progress, gamma)
    assert value == pytest.approx(2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)
    assert 0.0 <= value <= 1.0  # reaches 1.0 in floating point for large gamma * progress
    assert grl_lambda(min(progress + 0.1, 1.0), gamma) >= value  # non-decreasing


def test_grl_lambda_endpoints():
    assert grl_lambda(0.0) == 0.0
    assert grl_lambda(1.0) == pytest.approx(math.tanh(5.0))  # 2/(1+e^-10) - 1 = tanh(5)


def test_error_grl_lambda_progress():
    with pytest.raises(ValueError, match=r"progress must be in \[0, 1\], got 1.5"):
        grl_lambda(1.5)


def test_error_grl_lambda_gamma():
    with pytest.raises(ValueError, match=r"gamma must be in \(0, inf\), got -1"):
        grl_lambda(0.5, -1)


def test_error_lambda_not_finite():
    with pytest.raises(ValueError, match=r"lambd must be a finite real number in \(-inf, inf\), got nan"):
        GradientReversal().set_lambda(float("nan"))


def test_error_gradient_reversal_input():
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor, got list"):
        gradient_reversal([1.0, 2.0])


# ----------------------------------------------------------------------------- classifier and loss


def test_camera_domain_loss_is_one_softmax_cross_entropy():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 4, generator=g, dtype=torch.float64)
    cams = torch.tensor([0, 3, 1, 2, 2, 0])
    expected = 0.0
    for row, c in zip(logits.tolist(), cams.tolist(), strict=True):
        expected += math.log(sum(math.exp(v) for v in row)) - row[c]
    assert camera_domain_loss(logits, cams).item() == pytest.approx(expected / 6, rel=1e-12)


def test_classifier_shapes_layers_and_grl():
    clf = CameraClassifier(8, 3, hidden=16, num_layers=3, dropout=0.1)
    linears = [m for m in clf.mlp if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8, 16), (16, 16), (16, 3)]
    assert isinstance(clf.grl, GradientReversal)
    assert clf(torch.randn(5, 8)).shape == (5, 3)
    plain = CameraClassifier(8, 3, num_layers=1, grl=False)
    assert plain.grl is None and len(plain.mlp) == 1


def test_classifier_grl_reverses_feature_gradient():
    torch.manual_seed(0)
    clf = CameraClassifier(6, 3, lambd=0.7).double().eval()
    plain = CameraClassifier(6, 3, grl=False).double().eval()
    plain.mlp.load_state_dict(clf.mlp.state_dict())
    feats = torch.randn(4, 6, dtype=torch.float64)
    cams = torch.tensor([0, 1, 2, 1])
    a, b = feats.clone().requires_grad_(True), feats.clone().requires_grad_(True)
    camera_domain_loss(clf(a), cams).backward()
    camera_domain_loss(plain(b), cams).backward()
    torch.testing.assert_close(a.grad, -0.7 * b.grad)
    clf.set_lambda(0.1)
    assert float(clf.grl.lambd) == pytest.approx(0.1)


@pytest.mark.slow
def test_adversarial_training_lowers_fixed_probe_accuracy():
    """An encoder trained through the GRL against a camera classifier hides the camera."""
    rng = np.random.default_rng(0)
    n, dim, n_cams = 600, 8, 3
    cams = rng.integers(0, n_cams, n)
    offsets = rng.normal(size=(n_cams, dim)) * 1.5
    x = rng.normal(size=(n, dim)) + offsets[cams]
    x_t = torch.tensor(x, dtype=torch.float32)
    cams_t = torch.tensor(cams)

    def train(grl):
        torch.manual_seed(0)
        encoder = torch.nn.Linear(dim, dim)
        with torch.no_grad():
            encoder.weight.copy_(torch.eye(dim))
            encoder.bias.zero_()
        clf = CameraClassifier(dim, n_cams, hidden=32, grl=grl)
        opt = torch.optim.SGD([*encoder.parameters(), *clf.parameters()], lr=0.05)
        for step in range(300):
            if grl:
                clf.set_lambda(grl_lambda(step / 300))
            loss = camera_domain_loss(clf(encoder(x_t)), cams_t)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return encoder(x_t).numpy()

    probe = LogisticRegression(max_iter=1000).fit(x, cams)  # fitted once, on the initial embeddings
    before = probe.score(x, cams)
    adversarial = probe.score(train(grl=True), cams)
    cooperative = probe.score(train(grl=False), cams)
    assert before > 0.85
    assert adversarial < before - 0.2
    assert cooperative > before - 0.05  # without reversal the camera stays decodable


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"in_features": 0, "num_cameras": 3}, ValueError, r"in_features must be in \[1, inf\], got 0"),
        ({"in_features": 4, "num_cameras": 1}, ValueError, r"num_cameras must be in \[2, inf\], got 1"),
        ({"in_features": 4, "num_cameras": 3, "num_layers": 0}, ValueError, r"num_layers must be in \[1, inf\], got 0"),
        # a wrong type is a TypeError, as in the core
        ({"in_features": 4, "num_cameras": 3, "hidden": 2.0}, TypeError, r"hidden must be an integer, got 2.0"),
        ({"in_features": 4, "num_cameras": 3, "dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\), got 1.0"),
        ({"in_features": 4, "num_cameras": 3, "dropout": "0"}, TypeError, r"dropout must be a real number in \[0, 1\)"),
    ],
)
def test_error_classifier_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        CameraClassifier(**kwargs)


def test_error_classifier_grl_type():
    with pytest.raises(TypeError, match=r"grl must be a bool, got 'yes'"):
        CameraClassifier(4, 3, grl="yes")


def test_error_set_lambda_without_grl():
    with pytest.raises(RuntimeError, match=r"set_lambda needs a gradient reversal layer.*grl=False"):
        CameraClassifier(4, 3, grl=False).set_lambda(0.5)


def test_error_loss_cams_range():
    with pytest.raises(ValueError, match=r"cams must lie in \[0, 2\], got values in \[0, 3\]"):
        camera_domain_loss(torch.zeros(2, 3), torch.tensor([0, 3]))


def test_error_loss_cams_shape():
    with pytest.raises(ValueError, match=r"cams must have shape \(2,\).*got \(3,\)"):
        camera_domain_loss(torch.zeros(2, 3), torch.tensor([0, 1, 2]))


def test_error_loss_cams_dtype():
    with pytest.raises(TypeError, match=r"cams must hold integer camera indices, got dtype torch.float32"):
        camera_domain_loss(torch.zeros(2, 3), torch.tensor([0.0, 1.0]))


def test_error_loss_logits_shape():
    with pytest.raises(ValueError, match=r"logits must be a 2-D tensor \(batch, num_cameras\), got shape \(3,\)"):
        camera_domain_loss(torch.zeros(3), torch.tensor([0, 1, 2]))


def test_loss_does_not_modify_inputs():
    logits, cams = torch.randn(3, 4), torch.tensor([0, 1, 3])
    l0, c0 = logits.clone(), cams.clone()
    camera_domain_loss(logits, cams)
    assert torch.equal(logits, l0) and torch.equal(cams, c0)
