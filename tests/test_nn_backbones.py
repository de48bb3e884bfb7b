"""Backbones: shapes, strides, GeM, IBN-a, BN-neck outputs and checkpoint loading (no downloads)."""

import math

import pytest

torch = pytest.importorskip("torch", reason="torch extra not installed")
torchvision = pytest.importorskip("torchvision", reason="torch extra not installed")

from torch import nn  # noqa: E402

from labelrefine.nn import IBN, GeM, ReIDNet, build_backbone, load_pretrained  # noqa: E402

pytestmark = pytest.mark.slow  # trainings, process spawns, the docs build: see CONTRIBUTING.md

IMAGES = (2, 3, 64, 32)


@pytest.fixture(scope="module")
def images():
    return torch.randn(*IMAGES, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def r18():
    torch.manual_seed(0)
    return build_backbone("resnet18")


def test_resnet18_shapes_and_modes(r18, images):
    assert r18.num_features == 512
    r18.train()
    train_out = r18(images)
    r18.eval()
    with torch.no_grad():
        eval_out = r18(images)
    assert train_out.shape == eval_out.shape == (2, 512)
    torch.testing.assert_close(eval_out.norm(dim=1), torch.ones(2))
    assert not torch.allclose(train_out.norm(dim=1), torch.ones(2))


def test_train_output_neck_and_pool_definitions(images):
    torch.manual_seed(0)
    model = build_backbone("resnet18", train_output="pool").train()
    pooled = model(images)
    with torch.no_grad():
        maps = model.base(images)
    torch.testing.assert_close(pooled, maps.mean(dim=(2, 3)))
    model.train_output = "neck"
    neck = model(images)
    # BN-neck in train mode: batch statistics, weight 1, bias 0
    mean, var = pooled.mean(0), pooled.var(0, unbiased=False)
    torch.testing.assert_close(neck, (pooled - mean) / torch.sqrt(var + model.neck.eps), atol=1e-4, rtol=1e-4)
    assert not model.neck.bias.requires_grad and model.neck.weight.requires_grad
    model.eval()
    with torch.no_grad():
        out = model(images)
        expected = model.neck(model.base(images).mean(dim=(2, 3)))
    torch.testing.assert_close(out, expected / expected.norm(dim=1, keepdim=True))


def test_last_stride_doubles_final_map(images):
    torch.manual_seed(0)
    one = build_backbone("resnet18", last_stride=1).eval()
    two = build_backbone("resnet18", last_stride=2).eval()
    with torch.no_grad():
        assert one.base(images).shape == (2, 512, 4, 2)
        assert two.base(images).shape == (2, 512, 2, 1)


def test_last_stride_on_bottleneck():
    model = build_backbone("resnet50", last_stride=1)
    block = model.base.layer4[0]
    assert block.conv2.stride == (1, 1) and block.downsample[0].stride == (1, 1)
    assert model.num_features == 2048
    assert build_backbone("resnet50", last_stride=2).base.layer4[0].conv2.stride == (2, 2)


def test_gem_matches_definition_and_p_learns(images):
    pool = GeM(p=3.0).double()
    x = torch.rand(2, 3, 4, 5, dtype=torch.float64) + 0.1
    expected = torch.empty(2, 3, dtype=torch.float64)
    for i in range(2):
        for c in range(3):
            values = [float(v) for v in x[i, c].flatten()]
            expected[i, c] = (sum(max(v, 1e-6) ** 3 for v in values) / len(values)) ** (1 / 3)
    torch.testing.assert_close(pool(x), expected)
    torch.manual_seed(0)
    model = build_backbone("resnet18", pooling="gem").train()
    assert isinstance(model.pool, GeM)
    assert any(p is model.pool.p for p in model.parameters())
    model(images).sum().backward()
    assert model.pool.p.grad is not None and model.pool.p.grad.abs().item() > 0


def test_ibn_a_structure_and_definition():
    torch.manual_seed(0)
    model = build_backbone("resnet18", ibn=True)
    for name in ("layer1", "layer2", "layer3"):
        for block in getattr(model.base, name):
            assert isinstance(block.bn1, IBN) and isinstance(block.bn2, nn.BatchNorm2d)
    assert all(isinstance(block.bn1, nn.BatchNorm2d) for block in model.base.layer4)
    assert isinstance(model.base.bn1, nn.BatchNorm2d)
    keys = model.state_dict()
    assert "base.layer1.0.bn1.IN.weight" in keys and "base.layer3.1.bn1.BN.running_mean" in keys
    assert "base.layer1.0.bn1.weight" not in keys
    ibn = IBN(6).double().train()
    x = torch.randn(3, 6, 4, 4, dtype=torch.float64)
    out = ibn(x)
    # first half: per-sample, per-channel standardisation; second half: per-channel over the batch
    for c in range(6):
        for i in range(3):
            block = x[i, c] if c < 3 else x[:, c]
            mean = block.mean()
            var = ((block - mean) ** 2).mean()
            got = out[i, c] if c < 3 else out[:, c]
            torch.testing.assert_close(got, (block - mean) / torch.sqrt(var + 1e-5))


def test_ibn_resnet50_forward(images):
    model = build_backbone("resnet50", ibn=True, pooling="gem").eval()
    with torch.no_grad():
        out = model(images)
    assert out.shape == (2, 2048)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


def test_no_bnneck_returns_pooled(images):
    torch.manual_seed(0)
    model = build_backbone("resnet18", bnneck=False).eval()
    assert isinstance(model.neck, nn.Identity)
    with torch.no_grad():
        pooled = model.base(images).mean(dim=(2, 3))
        torch.testing.assert_close(model(images), pooled / pooled.norm(dim=1, keepdim=True))


def test_user_module_is_wrapped():
    module = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 4, 10))
    model = build_backbone(module)
    assert isinstance(model, ReIDNet) and model.base is module
    x = torch.randn(4, 3, 8, 4)
    torch.testing.assert_close(model.train()(x), module(x))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x).norm(dim=1), torch.ones(4))
    necked = ReIDNet(module, num_features=10)
    assert isinstance(necked.neck, nn.BatchNorm1d)


# ----------------------------------------------------------------------------- loading


def test_load_torchvision_resnet18(tmp_path, images):
    torch.manual_seed(1)
    source = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = build_backbone("resnet18")
    result = load_pretrained(model, path)
    assert all(k.startswith("neck.") for k in result.missing_keys) and result.missing_keys
    assert result.unexpected_keys == []
    torch.testing.assert_close(model.base.conv1.weight, source.conv1.weight)
    torch.testing.assert_close(model.base.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    # build_backbone(pretrained=...) gives the same weights, and the body computes the same maps
    built = build_backbone("resnet18", pretrained=str(path), last_stride=2).eval()
    source.eval()
    with torch.no_grad():
        expected = torch.flatten(
            source.avgpool(
                source.layer4(
                    source.layer3(
                        source.layer2(source.layer1(source.maxpool(source.relu(source.bn1(source.conv1(images))))))
                    )
                )
            ),
            1,
        )
        torch.testing.assert_close(built.base(images).mean(dim=(2, 3)), expected)


def test_load_strips_module_prefix_and_wrapper(tmp_path):
    source = torchvision.models.resnet18()
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    path = tmp_path / "ddp.pth"
    torch.save({"state_dict": state, "epoch": 3}, path)
    model = build_backbone("resnet18", pooling="gem")
    result = load_pretrained(model, path)
    assert sorted(k for k in result.missing_keys if not k.startswith("neck.")) == ["pool.p"]
    torch.testing.assert_close(model.base.conv1.weight, source.conv1.weight)


def test_load_ibn_checkpoint_key_names(tmp_path):
    torch.manual_seed(2)
    reference = build_backbone("resnet18", ibn=True)
    # an IBN-Net checkpoint: torchvision-style names with bn1.IN.* / bn1.BN.* and an fc head
    state = {k[len("base.") :]: v for k, v in reference.state_dict().items() if k.startswith("base.")}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    assert "layer1.0.bn1.IN.weight" in state
    path = tmp_path / "r18_ibn_a.pth"
    torch.save(state, path)
    model = build_backbone("resnet18", ibn=True, pretrained=path)
    torch.testing.assert_close(model.base.layer2[0].bn1.IN.weight, reference.base.layer2[0].bn1.IN.weight)


def test_load_full_reidnet_checkpoint(tmp_path):
    torch.manual_seed(3)
    reference = build_backbone("resnet18", pooling="gem")
    with torch.no_grad():
        reference.pool.p.fill_(4.0)
        reference.neck.weight.fill_(2.0)
    path = tmp_path / "reid.pth"
    torch.save(reference.state_dict(), path)
    model = build_backbone("resnet18", pooling="gem")
    result = load_pretrained(model, path)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert model.pool.p.item() == 4.0 and torch.all(model.neck.weight == 2.0)


def test_old_checkpoint_without_num_batches_tracked_loads(tmp_path):
    state = {k: v for k, v in torchvision.models.resnet18().state_dict().items() if "num_batches_tracked" not in k}
    path = tmp_path / "old.pth"
    torch.save(state, path)
    result = load_pretrained(build_backbone("resnet18"), path)  # strict, no error
    assert any(k.endswith("num_batches_tracked") for k in result.missing_keys)


def test_error_mismatched_checkpoint_lists_keys(tmp_path):
    path = tmp_path / "plain.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(
        ValueError,
        match=r"does not match the model: missing backbone keys \(\d+\): base\.layer1\.0"
        r"\.bn1\.IN\.weight.*unexpected keys \(\d+\): base\.layer1\.0\.bn1\.weight.*strict=False",
    ):
        build_backbone("resnet18", ibn=True, pretrained=path)


def test_non_strict_warns_and_loads_matching(tmp_path):
    source = torchvision.models.resnet18()
    path = tmp_path / "plain.pth"
    torch.save(source.state_dict(), path)
    with pytest.warns(UserWarning, match=r"missing backbone keys.*loading the matching keys only"):
        model = build_backbone("resnet18", ibn=True, pretrained=path, strict=False)
    torch.testing.assert_close(model.base.conv1.weight, source.conv1.weight)


def test_error_shape_mismatch(tmp_path):
    path = tmp_path / "r34.pth"
    state = torchvision.models.resnet18().state_dict()
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"shape mismatches \(1\): base\.conv1\.weight \(file \(64, 3, 3, 3\)"):
        build_backbone("resnet18", pretrained=path)


def test_error_bad_file(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_text("this is not a checkpoint")
    with pytest.raises(ValueError, match=r"garbage\.pth' could not be read as a torch state dict"):
        build_backbone("resnet18", pretrained=path)


def test_error_file_without_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match=r"must hold a state dict .* got list"):
        build_backbone("resnet18", pretrained=path)


def test_error_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"pretrained file not found: .*nope\.pth"):
        build_backbone("resnet18", pretrained=tmp_path / "nope.pth")


def test_error_pretrained_true_means_no_download():
    with pytest.raises(TypeError, match=r"pretrained must be None or the path.*never downloads.*got True"):
        build_backbone("resnet18", pretrained=True)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"name": "resnet152"}, r"name must be one of 'resnet18'.*got 'resnet152'"),
        ({"name": "resnet18", "last_stride": 3}, r"last_stride must be 1 or 2, got 3"),
        ({"name": "resnet18", "pooling": "max"}, r"pooling must be one of 'avg', 'gem'; got 'max'"),
        ({"name": "resnet18", "train_output": "bn"}, r"train_output must be one of 'neck', 'pool'; got 'bn'"),
    ],
)
def test_error_options(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        build_backbone(**kwargs)


def test_error_name_type():
    with pytest.raises(TypeError, match=r"name must be one of resnet18.*or a torch.nn.Module, got int"):
        build_backbone(50)


def test_error_options_for_user_module():
    with pytest.raises(ValueError, match=r"ibn applies to torchvision ResNets only.*got True"):
        build_backbone(nn.Linear(3, 3), ibn=True)
    with pytest.raises(ValueError, match=r"bnneck applies to torchvision ResNets only.*ReIDNet\(module"):
        build_backbone(nn.Linear(3, 3), bnneck=True)


def test_error_reidnet_bad_output():
    model = build_backbone(nn.Identity())
    with pytest.raises(ValueError, match=r"must produce \(batch, features\) embeddings, got shape \(2, 3, 4, 4\)"):
        model(torch.zeros(2, 3, 4, 4))


def test_error_reidnet_neck_needs_size():
    with pytest.raises(ValueError, match=r"bnneck=True needs num_features.*got num_features=None"):
        ReIDNet(nn.Identity(), None)


def test_error_ibn_and_gem_arguments():
    with pytest.raises(ValueError, match=r"planes must be in \[2, inf\], got 1"):
        IBN(1)
    with pytest.raises(ValueError, match=r"ratio must be in \(0, 1\), got 1.0"):
        IBN(4, ratio=1.0)
    with pytest.raises(ValueError, match=r"p must be in \(0, inf\), got 0"):
        GeM(p=0)


def test_forward_does_not_modify_input(r18, images):
    before = images.clone()
    r18.eval()
    with torch.no_grad():
        r18(images)
    assert torch.equal(images, before) and not math.isnan(float(images.sum()))
