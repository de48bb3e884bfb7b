"""docs/cluster-contrast.md: its diffs, applied to a loop of the same shape as Cluster-Contrast's script, run.

The loop below is written for this test in the shape of Cluster-Contrast's unsupervised training
example (its variable names, its DBSCAN, its memory set by assignment), with stand-ins for the
parts that need images: ``clustercontrast`` modules (a memory written from its definition, the
Jaccard distance), a linear model over synthetic camera-biased features and a trainer that takes
``loss = memory(f, labels); loss.backward(); optimizer.step()`` steps as Cluster-Contrast's does.
"""

from __future__ import annotations

import re
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from labelrefine import jaccard_distance, knn, refine, relabel  # noqa: E402
from labelrefine.io import save_local_labels  # noqa: E402
from labelrefine.synthetic import make_camera_biased  # noqa: E402

pytestmark = pytest.mark.slow  # trains a model; see CONTRIBUTING.md

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cluster-contrast.md"

SCRIPT = """\
import collections

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import DBSCAN

from clustercontrast.models.cm import ClusterMemory
from clustercontrast.utils.faiss_rerank import compute_jaccard_distance


def main_worker(args):
    dataset = get_data(args.dataset, args.data_dir)
    model = create_model(args)
    trainer = ClusterContrastTrainer(model)
    for epoch in range(args.epochs):
        with torch.no_grad():
            features = extract_features(model, sorted(dataset.train))
            features = torch.cat([features[f].unsqueeze(0) for f, _, _ in sorted(dataset.train)], 0)
            rerank_dist = compute_jaccard_distance(features, k1=args.k1, k2=args.k2)
            if epoch == 0:
                cluster = DBSCAN(eps=args.eps, min_samples=4, metric="precomputed", n_jobs=-1)
            pseudo_labels = cluster.fit_predict(rerank_dist)
            num_cluster = len(set(pseudo_labels)) - (1 if -1 in pseudo_labels else 0)

        @torch.no_grad()
        def generate_cluster_features(labels, features):
            centers = collections.defaultdict(list)
            for i, label in enumerate(labels):
                if label == -1:
                    continue
                centers[labels[i]].append(features[i])
            centers = [torch.stack(centers[idx], dim=0).mean(0) for idx in sorted(centers.keys())]
            return torch.stack(centers, dim=0)

        cluster_features = generate_cluster_features(pseudo_labels, features)
        memory = ClusterMemory(model.module.num_features, num_cluster, temp=args.temp,
                               momentum=args.momentum, use_hard=args.use_hard).cuda()
        memory.features = F.normalize(cluster_features, dim=1).cuda()
        trainer.memory = memory
        pseudo_labeled_dataset = []
        for i, ((fname, _, cid), label) in enumerate(zip(sorted(dataset.train), pseudo_labels)):
            if label != -1:
                pseudo_labeled_dataset.append((fname, label.item(), cid))
        trainer.train(epoch, pseudo_labeled_dataset)
    return trainer
"""


# ----------------------------------------------------------------------------- applying the page's diffs


def page_diffs() -> list[str]:
    return re.findall(r"```diff\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)


def changed_lines(diff: str) -> int:
    return sum(1 for line in diff.splitlines() if line[:1] in "+-")


def apply(diff: str, script: str) -> str:
    """Apply a diff whose hunks are separated by ``@@`` lines; each hunk's old text must occur once."""
    for hunk in re.split(r"^@@.*\n", diff, flags=re.M):
        lines = hunk.splitlines()
        if not lines:
            continue
        old = "".join(line[1:] + "\n" for line in lines if line[:1] in " -")
        new = "".join(line[1:] + "\n" for line in lines if line[:1] in " +")
        assert script.count(old) == 1, f"the page's hunk does not match the script's lines once:\n{old}"
        script = script.replace(old, new)
    return script


def test_the_change_touches_at_most_8_lines_and_the_memory_swap_2():
    minimal, memory = page_diffs()
    assert changed_lines(minimal) <= 8
    assert changed_lines(memory) == 4  # two lines replaced
    assert "ClusterMemory" not in minimal  # CALR alone keeps Cluster-Contrast's memory


# ----------------------------------------------------------------------------- stand-ins for the script's world


class ReferenceMemory(torch.nn.Module):
    """Cluster-Contrast's memory from its definition: ClusterNCE, per-sample momentum update in backward."""

    def __init__(self, num_features, num_samples, temp=0.05, momentum=0.2, use_hard=False):
        super().__init__()
        self.temp, self.momentum = temp, momentum
        self.register_buffer("features", torch.zeros(num_samples, num_features))

    def forward(self, inputs, targets):
        memory = self

        class CM(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x.mm(memory.features.t())

            @staticmethod
            def backward(ctx, grad):
                (x,) = ctx.saved_tensors
                grad_x = grad.mm(memory.features)
                for row, y in zip(x, targets.tolist(), strict=True):
                    memory.features[y] = memory.momentum * memory.features[y] + (1.0 - memory.momentum) * row
                    memory.features[y] /= memory.features[y].norm()
                return grad_x

        outputs = CM.apply(torch.nn.functional.normalize(inputs, dim=1)) / self.temp
        return torch.nn.functional.cross_entropy(outputs, targets)


def dense_jaccard(features, k1, k2):
    dist = jaccard_distance(features, k1=k1, k2=k2, backend="numpy")
    dense = np.ones(dist.shape, dtype=np.float32)
    coo = dist.tocoo()
    dense[coo.row, coo.col] = coo.data
    return dense


class Model(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc = torch.nn.Linear(dim, dim)
        torch.nn.init.eye_(self.fc.weight)
        torch.nn.init.zeros_(self.fc.bias)
        self.num_features = dim
        self.module = self  # DataParallel's attribute, as the script reads model.module.num_features

    def forward(self, x):
        return self.fc(x)


class Trainer:
    """Cluster-Contrast's trainer step: loss = memory(f, labels); backward; optimizer step."""

    def __init__(self, model, inputs):
        self.model, self.inputs, self.memory = model, inputs, None
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        self.labels_per_epoch, self.memory_moved = [], []

    def train(self, epoch, pseudo_labeled_dataset):
        self.labels_per_epoch.append(dict((fname, label) for fname, label, _ in pseudo_labeled_dataset))
        before = self.memory.features.clone()
        generator = torch.Generator().manual_seed(epoch)
        for _ in range(5):
            order = torch.randperm(len(pseudo_labeled_dataset), generator=generator)[:32]
            batch = [pseudo_labeled_dataset[i] for i in order]
            x = torch.stack([self.inputs[fname] for fname, _, _ in batch])
            labels = torch.tensor([label for _, label, _ in batch])
            loss = self.memory(self.model(x), labels)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.memory_moved.append(not torch.equal(before, self.memory.features))


@pytest.fixture
def world(tmp_path, monkeypatch):
    """The synthetic dataset in Cluster-Contrast's (fname, pid, camid) form, its stage-1 file and the stubs."""
    data = make_camera_biased(n_ids=30, n_cams=3, rng=0)
    fnames = [f"/data/market/bounding_box_train/{i:05d}_c{c}.jpg" for i, c in enumerate(data.cams)]
    train = [(f, int(p), int(c)) for f, p, c in zip(fnames, data.pids, data.cams, strict=True)]
    inputs = {f: torch.from_numpy(x) for f, x in zip(fnames, data.feats, strict=True)}
    monkeypatch.chdir(tmp_path)
    # the script calls .cuda(); this test runs on the CPU, where the calls leave things where they are
    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, device=None: self)
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *args, **kwargs: self)
    moved = [f.replace("/data/market", "/elsewhere") for f in fnames]  # stage 1 ran where the data was then
    save_local_labels("runs/intra/local_labels.npz", data.local_labels, moved, data.cams)
    cm = types.ModuleType("clustercontrast.models.cm")
    cm.ClusterMemory = ReferenceMemory
    rerank = types.ModuleType("clustercontrast.utils.faiss_rerank")
    rerank.compute_jaccard_distance = dense_jaccard
    for name in ("clustercontrast", "clustercontrast.models", "clustercontrast.utils"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "clustercontrast.models.cm", cm)
    monkeypatch.setitem(sys.modules, "clustercontrast.utils.faiss_rerank", rerank)
    dataset = types.SimpleNamespace(train=train)
    args = types.SimpleNamespace(
        dataset="synthetic", data_dir="", epochs=2, k1=30, k2=6, eps=0.6, temp=0.05, momentum=0.2, use_hard=False
    )

    def run(script):
        torch.manual_seed(0)
        model = Model(data.feats.shape[1])
        trainer = Trainer(model, inputs)

        def extract_features(model, items):
            with torch.no_grad():
                return {f: model(inputs[f][None])[0] for f, _, _ in items}

        namespace = {
            "__name__": "cluster_contrast_train_usl",
            "get_data": lambda name, root: dataset,
            "create_model": lambda args: model,
            "ClusterContrastTrainer": lambda model: trainer,
            "extract_features": extract_features,
        }
        exec(compile(script, "cluster_contrast_train_usl.py", "exec"), namespace)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning: every image has a stage-1 label, the memory updates
            return namespace["main_worker"](args)

    return types.SimpleNamespace(data=data, train=train, inputs=inputs, run=run)


def test_the_page_change_refines_the_script_labels(world):
    minimal, _ = page_diffs()
    original = world.run(SCRIPT)
    refined = world.run(apply(minimal, SCRIPT))
    # epoch 0 sees the same features: the refined labels are refine() of the original DBSCAN labels
    assert sorted(world.train) == world.train  # file names in sample order: no reordering below
    fnames = [f for f, _, _ in world.train]
    features = torch.stack([world.inputs[f] for f in fnames])
    dbscan = np.array([original.labels_per_epoch[0].get(f, -1) for f in fnames])
    graph = knn(features, 29)
    expected = relabel(refine(dbscan, world.data.local_labels, world.data.cams, features, knn=graph).labels)
    got = np.array([refined.labels_per_epoch[0].get(f, -1) for f in fnames])
    np.testing.assert_array_equal(got, expected)
    assert (got == -1).sum() > (dbscan == -1).sum()  # refinement discarded some clustered images
    assert all(original.memory_moved) and all(refined.memory_moved)


def test_the_page_memory_swap_trains_like_cluster_contrast(world):
    minimal, memory = page_diffs()
    swapped = world.run(apply(memory, apply(minimal, SCRIPT)))
    from labelrefine.nn import ClusterMemory

    assert isinstance(swapped.memory, ClusterMemory) and swapped.memory.update_in_backward
    assert all(swapped.memory_moved)  # centroids move inside backward, no update() in the trainer
    reference = world.run(apply(minimal, SCRIPT))  # same loop with the reference memory
    assert swapped.labels_per_epoch[0] == reference.labels_per_epoch[0]
    torch.testing.assert_close(swapped.memory.features, reference.memory.features, atol=1e-5, rtol=0)
