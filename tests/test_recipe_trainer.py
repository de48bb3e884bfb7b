"""The trainer's steps and hooks: overrides run in place of the defaults, hooks see and steer the run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("yaml")
pytest.importorskip("infomap")

from labelrefine.recipes.calr import (  # noqa: E402
    Hook,
    InterTrainer,
    IntraTrainer,
    PseudoLabels,
    main,
    resolve_config,
    stages,
    train_inter,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quiet_recipe_logger")]

SMALL = {
    "synthetic.ids": "30",
    "synthetic.cams": "2",
    "optim.epochs": "3",
    "optim.iters_per_epoch": "2",
    "runtime.progress": "false",
    "refinement.local_labels": "per-camera",
}


def _inter(tmp_path, **extra):
    return resolve_config("inter", preset="synthetic", sets={**SMALL, "runtime.run_dir": str(tmp_path), **extra})


class Recorder(Hook):
    def __init__(self):
        self.calls = []

    def before_epoch(self, trainer, epoch):
        self.calls.append(("before", epoch))

    def after_step(self, trainer, epoch, it, losses):
        assert set(losses) == {"loss", "loss_inter", "loss_domain"} and not losses["loss"].requires_grad
        self.calls.append(("step", epoch, it))

    def after_epoch(self, trainer, epoch, record):
        assert record["epoch"] == epoch and "loss" in record
        self.calls.append(("after", epoch))


def test_hooks_are_called_around_every_epoch_and_step(tmp_path):
    recorder = Recorder()
    train_inter(_inter(tmp_path), hooks=[recorder])
    expected = []
    for epoch in range(3):
        expected += [("before", epoch), ("step", epoch, 0), ("step", epoch, 1), ("after", epoch)]
    assert recorder.calls == expected


def test_a_hook_stops_the_run_and_sets_the_learning_rate(tmp_path):
    class HalveAndStop(Hook):
        def before_epoch(self, trainer, epoch):
            for group in trainer.optimizer.param_groups:
                group["lr"] = 0.5e-3

        def after_epoch(self, trainer, epoch, record):
            if epoch == 1:
                trainer.request_stop()

    result = train_inter(_inter(tmp_path), hooks=[HalveAndStop()])
    assert [r["epoch"] for r in result.history] == [0, 1]
    assert [r["lr"] for r in result.history] == [0.5e-3, 0.5e-3]
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["epoch"] == 1


def test_an_overridden_pseudo_label_step_is_what_trains(tmp_path):
    seen = []

    class OneCluster(InterTrainer):
        def pseudo_label(self, feats, epoch):
            seen.append(feats.shape)
            labels = np.where(np.arange(feats.shape[0]) < 8, 0, -1)
            return self.pack(labels, feats, tag=epoch)

    result = OneCluster(_inter(tmp_path)).fit()
    n = len(result.labels)
    assert seen == [(n, 64)] * 3 and (result.labels[:8] == 0).all() and (result.labels[8:] == -1).all()
    assert [r["tag"] for r in result.history] == [0, 1, 2] and result.history[0]["n_clusters"] == 1


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_an_epoch_without_clusters_trains_nothing(tmp_path):
    class NoCluster(InterTrainer):
        def pseudo_label(self, feats, epoch):
            return self.pack(np.full(feats.shape[0], -1), feats)

    result = NoCluster(_inter(tmp_path, **{"optim.epochs": "1"})).fit()
    assert result.history[0]["n_clusters"] == 0 and "loss" not in result.history[0]


def test_pseudo_labels_are_frozen_and_count_their_clusters():
    pseudo = PseudoLabels(np.array([0, 1, -1]), np.zeros((2, 4)))
    assert pseudo.n_clusters == 2 and pseudo.weights is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        pseudo.labels = np.zeros(3)  # type: ignore[misc]


def test_stage1_clusters_each_camera_with_its_overridable_step(tmp_path):
    cameras = []

    class Singletons(IntraTrainer):
        def cluster_camera(self, feats):
            cameras.append(self.camera_index)
            return np.arange(feats.shape[0])

    sets = {key: SMALL[key] for key in ("synthetic.ids", "synthetic.cams", "runtime.progress")}
    config = resolve_config(
        "intra", preset="synthetic", sets={**sets, "optim.epochs": "1", "runtime.run_dir": str(tmp_path)}
    )
    result = Singletons(config).fit()
    assert cameras == [0, 0, 1, 1]  # one epoch and the final clustering per camera
    assert np.unique(result.labels).size == result.labels.size  # every image its own local cluster


def test_a_bug_during_training_keeps_its_traceback_and_bad_input_exits_2(tmp_path, monkeypatch, capsys):
    args = ["inter", "--preset", "synthetic", "--run-dir", str(tmp_path / "bug"), "--no-progress"]
    args += ["--local-labels", "per-camera", "--set", "synthetic.ids=30", "--set", "synthetic.cams=2"]

    def broken(self, epoch, pseudo):
        raise ValueError("a bug deep in training")

    monkeypatch.setattr(stages.InterTrainer, "train_epoch", broken)
    with pytest.raises(ValueError, match="a bug deep in training"):
        main(args)
    assert main([*args[:4], str(tmp_path / "bad"), *args[5:], "--set", "clustering.k=100000"]) == 2
    assert "clustering.k must be at most N - 1" in capsys.readouterr().err
