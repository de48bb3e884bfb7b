"""extract_features: order, item contracts, flip, modes, errors (single process)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch extra not installed")

from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset  # noqa: E402

from labelrefine.nn import extract_features  # noqa: E402

N, SHAPE = 11, (3, 6, 4)


def images():
    return torch.randn(N, *SHAPE, generator=torch.Generator().manual_seed(0))


class DictData(Dataset):
    def __init__(self, imgs, key="img"):
        self.imgs, self.key = imgs, key

    def __len__(self):
        return len(self.imgs)

    def __getitem__(self, i):
        return {"pid": i, self.key: self.imgs[i], "cam": i % 3}


class TensorOnly(Dataset):
    def __init__(self, imgs):
        self.imgs = imgs

    def __len__(self):
        return len(self.imgs)

    def __getitem__(self, i):
        return self.imgs[i]


class Stream(IterableDataset):
    def __iter__(self):
        yield torch.zeros(*SHAPE)


def net(seed=0):
    torch.manual_seed(seed)
    # BatchNorm and Dropout make train and eval outputs differ
    return nn.Sequential(nn.Flatten(), nn.Linear(72, 16), nn.BatchNorm1d(16), nn.Dropout(0.5), nn.Linear(16, 5))


def reference(model, imgs, flip=False, normalize=True):
    """One image at a time, eval mode, by the definition."""
    model.eval()
    rows = []
    with torch.no_grad():
        for img in imgs:
            out = model(img[None])[0]
            if flip:
                out = out + model(torch.flip(img, dims=[2])[None])[0]
            if normalize:
                out = out / out.norm()
            rows.append(out.numpy())
    return np.stack(rows).astype(np.float32)


@pytest.mark.parametrize("make", [lambda x: TensorDataset(x, torch.arange(N)), DictData, TensorOnly])
@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_rows_follow_dataset_order(make, batch_size):
    imgs, model = images(), net()
    feats = extract_features(model, make(imgs), batch_size=batch_size, progress=False)
    assert feats.dtype == np.float32 and feats.shape == (N, 5)
    np.testing.assert_allclose(feats, reference(model, imgs), atol=1e-5)


def test_dict_with_image_key_and_first_value():
    imgs, model = images(), net()
    expected = reference(model, imgs)
    np.testing.assert_allclose(extract_features(model, DictData(imgs, "image"), progress=False), expected, atol=1e-5)

    class FirstValue(DictData):
        def __getitem__(self, i):
            return {"pixels": self.imgs[i], "pid": i}

    np.testing.assert_allclose(extract_features(model, FirstValue(imgs), progress=False), expected, atol=1e-5)


def test_flip_sums_then_normalises():
    imgs, model = images(), net()
    feats = extract_features(model, TensorOnly(imgs), flip=True, batch_size=3, progress=False)
    np.testing.assert_allclose(feats, reference(model, imgs, flip=True), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)


def test_without_normalize_returns_raw_outputs():
    imgs, model = images(), net()
    feats = extract_features(model, TensorOnly(imgs), normalize=False, progress=False)
    np.testing.assert_allclose(feats, reference(model, imgs, normalize=False), atol=1e-5)


def test_dataloader_options_reused_and_mode_restored():
    imgs, model = images(), net()
    model.train()
    loader = DataLoader(DictData(imgs), batch_size=5, shuffle=False)
    feats = extract_features(model, loader, progress=False)
    assert model.training  # restored
    np.testing.assert_allclose(feats, reference(model, imgs), atol=1e-5)


def test_float64_model_and_inputs_unchanged():
    imgs = images()
    before = imgs.clone()
    model = net().double()
    feats = extract_features(model, TensorOnly(imgs), progress=False)
    assert feats.dtype == np.float32
    np.testing.assert_allclose(feats, reference(model, imgs.double()), atol=1e-5)
    assert torch.equal(imgs, before)


def test_ddp_free_single_process_with_progress_bar(capsys):
    feats = extract_features(net(), TensorOnly(images()), batch_size=4, progress=True)
    assert feats.shape == (N, 5)


def test_error_shuffled_loader():
    loader = DataLoader(TensorOnly(images()), batch_size=4, shuffle=True)
    with pytest.raises(ValueError, match=r"sequential sampler \(shuffle=False.*got sampler RandomSampler"):
        extract_features(net(), loader, progress=False)


def test_error_iterable_dataset():
    with pytest.raises(TypeError, match=r"map-style torch Dataset.*got Stream"):
        extract_features(net(), Stream(), progress=False)


def test_error_empty_dataset():
    with pytest.raises(ValueError, match=r"dataset must not be empty, got 0 samples"):
        extract_features(net(), TensorOnly(torch.zeros(0, *SHAPE)), progress=False)


def test_error_item_contract():
    class Strings(TensorOnly):
        def __getitem__(self, i):
            return ("not an image", i)

    with pytest.raises(TypeError, match=r"dataset items must be an image tensor.*gave tuple"):
        extract_features(net(), Strings(images()), progress=False)


def test_error_model_output_shape():
    with pytest.raises(ValueError, match=r"model must return \(batch, features\) embeddings, got \(4, 3, 6, 4\)"):
        extract_features(nn.Identity(), TensorOnly(images()), batch_size=4, progress=False)


def test_error_batch_size():
    with pytest.raises(ValueError, match=r"batch_size must be in \[1, inf\], got 0"):
        extract_features(net(), TensorOnly(images()), batch_size=0, progress=False)


def test_error_num_workers():
    with pytest.raises(ValueError, match=r"num_workers must be in \[0, inf\], got -1"):
        extract_features(net(), TensorOnly(images()), num_workers=-1, progress=False)


def test_error_model_type():
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got function"):
        extract_features(lambda x: x, TensorOnly(images()), progress=False)
