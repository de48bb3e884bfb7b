"""The CALR recipe end to end on camera-biased synthetic features with an MLP backbone (CPU, seconds)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("yaml")
pytest.importorskip("infomap")

from labelrefine.metrics import ImpurityReport, cluster_report  # noqa: E402
from labelrefine.recipes.calr import (  # noqa: E402
    RunInterrupted,
    import_authors_local_labels,
    load_local_labels,
    main,
    plot_runs,
    resolve_config,
    save_local_labels,
    train_inter,
    train_intra,
)
from labelrefine.recipes.calr.data import build_data, synthetic_splits  # noqa: E402
from labelrefine.recipes.calr.runtime import read_log  # noqa: E402
from labelrefine.recipes.calr.trainer import global_batches  # noqa: E402
from labelrefine.retrieval import evaluate_retrieval  # noqa: E402

QUIET = {"runtime.progress": "false"}


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quiet_recipe_logger")]


def _intra(run_dir, sets=None):
    values = {
        "runtime.run_dir": str(run_dir),
        **QUIET,
        "optim.epochs": "2",
        **{k: str(v) for k, v in (sets or {}).items()},
    }
    return resolve_config("intra", preset="synthetic", sets=values)


def _inter(run_dir, local, sets=None):
    values = {
        "runtime.run_dir": str(run_dir),
        "refinement.local_labels": str(local),
        **QUIET,
        **{k: str(v) for k, v in (sets or {}).items()},
    }
    return resolve_config("inter", preset="synthetic", sets=values)


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    root = tmp_path_factory.mktemp("calr")
    logging.getLogger("labelrefine.recipes.calr").propagate = False
    config = _intra(root / "intra")
    return root, config, train_intra(config)


# ---------------------------------------------------------------------------------------- stage 1


def test_stage1_writes_local_labels_and_the_run_folder(stage1):
    root, config, result = stage1
    run = root / "intra"
    for name in ("config.yaml", "env.json", "log.jsonl", "train.log", "checkpoint.pt", "local_labels.npz"):
        assert (run / name).is_file(), name
    data = build_data(config)
    with np.load(run / "local_labels.npz") as saved:
        np.testing.assert_array_equal(saved["labels"], result.labels)
        np.testing.assert_array_equal(saved["keys"], data.train_keys)
        np.testing.assert_array_equal(saved["cams"], data.train_cams)
    # local labels: one camera per local cluster (checked by a loop over the clusters)
    for label in np.unique(result.labels[result.labels >= 0]):
        assert np.unique(data.train_cams[result.labels == label]).size == 1
    assert cluster_report(data.train_pids, result.labels).pairwise_precision > 0.8
    env = json.loads((run / "env.json").read_text())
    assert env["world_size"] == 1 and env["per_device_batch"] == env["global_batch"] == config.optim.batch_size
    assert env["seed"] == config.seed and "torch" in env["versions"] and env["device"] == "cpu"
    records = read_log(run)
    assert len(records) == data.num_cams * config.optim.epochs
    assert {"camera", "epoch", "n_clusters", "loss", "quality"} <= set(records[0])
    assert "final" in records[config.optim.epochs - 1] and "stage: intra" in (run / "config.yaml").read_text()
    assert "camera 1/" in (run / "train.log").read_text()


def test_synthetic_splits_match_their_definition():
    config = resolve_config("inter", preset="synthetic", sets={"synthetic.ids": "30", "synthetic.cams": "3"})
    s = synthetic_splits(config)
    from labelrefine.synthetic import make_camera_biased

    full = make_camera_biased(
        n_ids=30,
        n_cams=3,
        dim=config.synthetic.dim,
        family_size=config.synthetic.family_size,
        camera_strength=config.synthetic.camera_strength,
        noise=config.synthetic.noise,
        rng=0,
    )
    seen, query, gallery, train = set(), [], [], []
    for i, (pid, cam) in enumerate(zip(full.pids.tolist(), full.cams.tolist(), strict=True)):
        if pid < 15:
            train.append(i)
        elif (pid, cam) not in seen:
            seen.add((pid, cam))
            query.append(i)
        else:
            gallery.append(i)
    for name, index in (("train", train), ("query", query), ("gallery", gallery)):
        np.testing.assert_array_equal(s[f"{name}_feats"], full.feats[index])
        np.testing.assert_array_equal(s[f"{name}_pids"], full.pids[index])


def test_global_batches_do_not_depend_on_the_number_of_processes():
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 12, size=200)
    cams = rng.integers(0, 4, size=200)
    config = resolve_config(
        "inter",
        preset="synthetic",
        sets={"optim.batch_size": "32", "optim.num_instances": "4", "optim.iters_per_epoch": "7"},
    )
    one = global_batches(labels, cams, config.optim, 1, 5)
    two = global_batches(labels, cams, config.optim, 2, 5)
    assert one.shape == (7, 32)
    np.testing.assert_array_equal(one, two)
    for row in one:  # P runs of K indices, one cluster per run, never an outlier
        runs = labels[row].reshape(8, 4)
        assert (runs >= 0).all() and (runs == runs[:, :1]).all() and np.unique(runs[:, 0]).size == 8
    few = np.where(labels > 4, -1, labels)  # 5 clusters: P shrinks to a multiple of the world size
    assert global_batches(few, cams, config.optim, 2, 5).shape == (7, 16)
    assert global_batches(np.full(200, -1), cams, config.optim, 1, 5) is None


# ---------------------------------------------------------------------------------------- stage 2


def _untrained_map(config):
    s = synthetic_splits(config)
    result = evaluate_retrieval(
        s["query_pids"],
        s["gallery_pids"],
        query_cams=s["query_cams"],
        gallery_cams=s["gallery_cams"],
        query_feats=s["query_feats"],
        gallery_feats=s["gallery_feats"],
    )
    return result.mAP


def test_stage2_improves_map_over_the_untrained_features_and_plots(stage1):
    root, _, _ = stage1
    config = _inter(root / "inter", root / "intra", {"optim.epochs": 4})
    result = train_inter(config)
    untrained = _untrained_map(config)
    assert result.metrics["mAP"] > untrained + 0.1, (result.metrics["mAP"], untrained)
    records = result.history
    assert [r["epoch"] for r in records] == [0, 1, 2, 3]
    keys = {
        "n_clusters",
        "n_outliers",
        "discard_ratio",
        "p",
        "loss",
        "loss_inter",
        "loss_domain",
        "mAP",
        "rank1",
        "rank5",
        "rank10",
        "lr",
        "cacl",
    }
    assert keys <= set(records[-1])
    assert set(records[0]["quality"]) == {"global", "local", "refined"}
    assert set(records[0]["impurity"]) == set(ImpurityReport._fields)
    assert records[0]["p"] == 1.0 and records[-1]["p"] < 1.0  # the authors' cosine decay
    assert [r["cacl"] for r in records] == [False, False, True, True]  # warm-up of 2 epochs
    png = plot_runs([root / "inter"])
    assert png == root / "inter" / "plots" / "fig6.png" and png.stat().st_size > 1000
    assert main(["plot", str(root / "inter"), "-o", str(root / "both.png")]) == 0


def test_refinement_raises_the_precision_of_the_training_labels(stage1):
    root, _, _ = stage1
    precision, fragments, removed = {}, {}, {}
    for rule in ("cross-camera", "camera", None):
        sets = {"refinement.enabled": "false"} if rule is None else {"refinement.rule": rule}
        config = _inter(
            root / f"refine-{rule}", root / "intra", {"optim.epochs": 3, "alignment.enabled": "false", **sets}
        )
        records = train_inter(config).history
        precision[rule] = np.mean([r["quality"]["refined"]["pairwise_precision"] for r in records])
        fragments[rule] = np.mean([r["fragments_per_group"] for r in records])
        removed[rule] = np.mean([r["impurity"]["impurities_removed"] for r in records])
    # measured: precision 0.42 without refinement, 0.45 with the default rule (max_deviation 5, which
    # removes about 15 % of the impurities), 0.59 with one pivot per group (which discards look-alikes
    # and true members alike, discard precision about 0.7)
    assert precision["cross-camera"] > precision[None] + 0.02, (precision, removed)
    assert precision["camera"] > precision[None] + 0.05, precision
    assert removed["cross-camera"] > 0.1 and removed[None] == 0.0, removed
    assert all(1.0 < fragments[rule] < 2.5 for rule in ("cross-camera", "camera")), fragments


def test_ablation_switches_run(stage1, tmp_path):
    root, _, _ = stage1
    config = _inter(
        tmp_path / "ablation",
        "per-camera",
        {
            "optim.epochs": 1,
            "optim.iters_per_epoch": 3,
            "clustering.method": "dbscan",
            "alignment.grl_schedule": "dann",
            "alignment.epochs": "null",
            "refinement.rule": "reference",
            "refinement.cacl_warmup": 0,
            "eval_every": 0,
        },
    )
    result = train_inter(config)
    record = result.history[0]
    assert record["n_clusters_global"] > 0 and "mAP" in record  # the last epoch is always evaluated
    assert (tmp_path / "ablation" / "local_labels.npz").is_file()
    none = _inter(
        tmp_path / "none",
        root / "intra",
        {
            "optim.epochs": 1,
            "optim.iters_per_epoch": 2,
            "refinement.enabled": "false",
            "alignment.enabled": "false",
            "refinement.cacl": "false",
        },
    )
    record = train_inter(none).history[0]
    assert record["discard_ratio"] == 0.0 and record["loss_domain"] == 0.0 and "local" not in record["quality"]


def test_missing_stage1_labels_are_explained(tmp_path):
    config = resolve_config(
        "inter", preset="synthetic", sets={"runtime.run_dir": str(tmp_path / "x" / "inter"), **QUIET}
    )
    with pytest.raises(
        FileNotFoundError, match="refinement.enabled=True needs stage-1 local labels.*--local-labels per-camera"
    ):
        train_inter(config)


# ---------------------------------------------------------------------------------------- resume


def _tensors_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_after_kill_gives_the_uninterrupted_result(stage1, tmp_path):
    root, _, _ = stage1
    common = {"optim.epochs": 3, "deterministic": "true", "refinement.cacl_warmup": 1}
    train_inter(_inter(tmp_path / "straight", root / "intra", common))
    killed = _inter(tmp_path / "killed", root / "intra", {**common, "stop_after_epoch": 0})
    with pytest.raises(RunInterrupted, match="after epoch 0"):
        train_inter(killed)
    assert len(read_log(tmp_path / "killed")) == 1
    with pytest.raises(FileExistsError, match="already holds a run"):
        train_inter(killed)
    with pytest.raises(ValueError, match="config differs from the run being resumed.*alignment.beta"):
        train_inter(_inter(tmp_path / "killed", root / "intra", {**common, "alignment.beta": 0.5}), resume=True)
    train_inter(_inter(tmp_path / "killed", root / "intra", common), resume=True)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)
    _tensors_equal(a["encoder"], b["encoder"])
    _tensors_equal(a["classifier"], b["classifier"])
    _tensors_equal(a["memory"], b["memory"])
    np.testing.assert_array_equal(a["labels"], b["labels"])
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in read_log(tmp_path / "straight")]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in read_log(tmp_path / "killed")]


def test_stage1_resume_after_kill_gives_the_uninterrupted_labels(tmp_path):
    common = {"synthetic.ids": 40, "synthetic.cams": 3, "deterministic": "true", "optim.iters_per_epoch": 4}
    straight = train_intra(_intra(tmp_path / "straight", common))
    with pytest.raises(RunInterrupted):
        train_intra(_intra(tmp_path / "killed", {**common, "stop_after_epoch": 2}))  # camera 2, epoch 1 of 2
    resumed = train_intra(_intra(tmp_path / "killed", common), resume=True)
    np.testing.assert_array_equal(straight.labels, resumed.labels)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)
    _tensors_equal(a["encoder"], b["encoder"])
    assert len(read_log(tmp_path / "killed")) == 6


# ---------------------------------------------------------------------------------------- local labels I/O


def test_authors_local_labels_match_a_loop(tmp_path):
    rng = np.random.default_rng(1)
    keys = np.array([f"/data/market/bounding_box_train/{i:04d}_c{i % 3 + 1}s1_{i:06d}_01.jpg" for i in range(60)])
    expected = np.full(60, -1)
    offset = 0
    for cam in range(3):  # one file per camera, rows in a random order, a few images left out
        members = [i for i in range(60) if i % 3 == cam and rng.random() > 0.2]
        local = rng.integers(0, 5, size=len(members))
        rows = [
            (f"bounding_box_train/{keys[i].rsplit('/', 1)[1]}", int(lab), cam)
            for i, lab in zip(members, local, strict=True)
        ]
        rows = [rows[j] for j in rng.permutation(len(rows))]
        np.save(tmp_path / f"cam{cam}.npy", np.array(rows))
        for i, lab in zip(members, local, strict=True):
            expected[i] = lab + offset
        offset = max(offset, int(local.max()) + offset + 1)
    got = import_authors_local_labels(tmp_path, keys)
    np.testing.assert_array_equal(got, expected)
    path = save_local_labels(tmp_path / "out" / "local_labels.npz", got, keys, np.arange(60) % 3)
    shuffled = rng.permutation(60)
    np.testing.assert_array_equal(load_local_labels(path, keys[shuffled]), got[shuffled])
    np.testing.assert_array_equal(load_local_labels(path.parent, np.char.replace(keys, "/data", "/mnt")), got)


@pytest.mark.parametrize("other", ["synthetic.seed=1", "synthetic.ids=30"])
def test_stage1_labels_of_another_synthetic_set_are_refused(stage1, tmp_path, capsys, other):
    root, _, _ = stage1
    args = ["inter", "--preset", "synthetic", "--run-dir", str(tmp_path / "inter"), "--set", "runtime.progress=false"]
    args += ["--local-labels", str(root / "intra"), "--set", other]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert "local_labels.npz' was written for other data (dataset fingerprint" in err[0]


def test_local_label_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="local_labels file not found"):
        load_local_labels(tmp_path / "nope.npz", ["a"])
    path = save_local_labels(tmp_path / "l.npz", [0, 1], ["a.jpg", "b.jpg"], [0, 0])
    with pytest.raises(ValueError, match="none of its 2 keys matches a training image"):
        load_local_labels(path, ["c.jpg"])
    np.save(tmp_path / "bad.npy", np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"must hold an \(n, 3\) array of \(path, label, camera\) rows"):
        import_authors_local_labels(tmp_path / "bad.npy", ["a"])
    np.save(tmp_path / "text.npy", np.array([("a.jpg", "x", "0")]))
    with pytest.raises(ValueError, match="the label column must hold integers"):
        import_authors_local_labels(tmp_path / "text.npy", ["a.jpg"])
    with pytest.raises(FileNotFoundError, match="no .npy files"):
        import_authors_local_labels(_empty(tmp_path), ["a"])
    with pytest.raises(ValueError, match="keys must have one entry per label"):
        save_local_labels(tmp_path / "x.npz", [0, 1], ["a"], [0, 0])


def _empty(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder
