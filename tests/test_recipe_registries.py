"""Recipe config (issue 20): typed ``sets=`` and ``resolve_config``, renamed clustering keys, registries."""

from __future__ import annotations

import typing

import pytest

pytest.importorskip("torch")
pytest.importorskip("yaml")

import numpy as np

from labelrefine.cluster import register_cluster_method, unregister_cluster_method
from labelrefine.data import DATASETS, read_folder, register_dataset, unregister_dataset
from labelrefine.pivots import RulePlan, register_pivot_rule, unregister_pivot_rule
from labelrefine.recipes import calr
from labelrefine.recipes.calr.backbones import BACKBONES, register_backbone, unregister_backbone
from labelrefine.recipes.calr.config import (
    EvalConfig,
    InterConfig,
    IntraConfig,
    config_to_dict,
    dataset_choices,
    resolve_config,
)
from labelrefine.schedules import SCHEDULES, get_schedule, register_schedule, unregister_schedule

# ------------------------------------------------------------------------------------ typed values


def test_sets_take_typed_values_as_well_as_text():
    typed = {
        "optim.epochs": 2,
        "optim.lr": 1e-4,
        "refinement.enabled": False,
        "refinement.local_labels": None,
        "runtime.hooks": ["a.b:C"],
        "clustering.dbscan.k1": 20,
    }
    cfg = resolve_config("inter", preset="synthetic", sets=typed)
    text = resolve_config("inter", preset="synthetic", sets={key: str(value) for key, value in typed.items()})
    got = (cfg.optim.epochs, cfg.optim.lr, cfg.refinement.enabled, cfg.refinement.local_labels, cfg.runtime.hooks)
    assert got == (2, 1e-4, False, None, ("a.b:C",)) and cfg.clustering.dbscan.k1 == 20
    assert cfg.replace(runtime={"hooks": ()}) == text.replace(runtime={"hooks": ()})
    with pytest.raises(TypeError, match=r"optim.epochs must be an integer, got 2.5"):
        resolve_config("inter", sets={"optim.epochs": 2.5})
    with pytest.raises(TypeError, match=r"refinement.enabled must be a bool, got 1"):
        resolve_config("inter", sets={"refinement.enabled": 1})


def test_resolve_config_returns_the_class_of_its_stage():
    for stage, cls in (("intra", IntraConfig), ("inter", InterConfig), ("eval", EvalConfig)):
        assert type(resolve_config(stage, preset="synthetic")) is cls
    hints = typing.get_type_hints(resolve_config)
    assert hints["return"] != typing.Any  # the overloads narrow it per stage literal


def test_choice_fields_are_checked_against_their_values():
    assert resolve_config("inter", sets={"refinement.rule": "camera-linked"}).refinement.rule == "camera-linked"
    with pytest.raises(TypeError, match=r"model.pooling must be a string, got 3"):
        resolve_config("inter", sets={"model.pooling": 3})
    with pytest.raises(ValueError, match=r"optim.optimizer must be one of 'adam', 'sgd'; got 'rmsprop'"):
        resolve_config("inter", sets={"optim.optimizer": "rmsprop"})
    with pytest.raises(ValueError, match=r"refinement.rule must be one of .*got 'mine'"):
        resolve_config("inter", sets={"refinement.rule": "mine"})
    with pytest.raises(ValueError, match=r"camera_clustering.method must be one of .*got 'halves'"):
        resolve_config("intra", sets={"camera_clustering.method": "halves"})


def test_rules_and_camera_methods_registered_in_the_core_are_config_choices():
    @register_pivot_rule("mine")
    def mine(inputs):
        return RulePlan(pivots=np.flatnonzero(inputs.global_labels >= 0))

    @register_cluster_method("halves")
    def halves(feats, options):
        return (np.arange(feats.shape[0]) >= feats.shape[0] // 2).astype(np.int64)

    try:
        assert resolve_config("inter", sets={"refinement.rule": "mine"}).refinement.rule == "mine"
        config = resolve_config("intra", sets={"camera_clustering.method": "halves"})
        assert config.camera_clustering.options()["method"] == "halves"
    finally:
        unregister_pivot_rule("mine")
        unregister_cluster_method("halves")


# ---------------------------------------------------------------------------------- renamed keys


@pytest.mark.parametrize(
    ("stage", "old", "new"),
    [
        ("inter", "clustering.k1", "clustering.dbscan.k1"),
        ("inter", "clustering.min_size", "clustering.infomap.min_size"),
        ("inter", "clustering.k_includes_self", "clustering.infomap.k_includes_self"),
        ("intra", "clustering.images_per_cluster", "camera_clustering.agglomerative.images_per_cluster"),
        ("intra", "clustering.method", "camera_clustering.method"),
        ("intra", "k1", "camera_clustering.agglomerative.k1"),  # the flat config, then the sub-section
        ("inter", "min_samples", "clustering.dbscan.min_samples"),
    ],
)
def test_a_renamed_key_names_its_new_place(stage, old, new):
    with pytest.raises(
        ValueError, match=rf"unknown config key '{old}' .*did you mean '{new}'\? \(the key was renamed\)"
    ):
        resolve_config(stage, sets={old: "4"})


def test_renamed_keys_on_the_command_line_and_in_yaml(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert calr.main(["inter", "--preset", "synthetic", "--run-dir", run, "--set", "clustering.min_size=4"]) == 2
    assert "did you mean 'clustering.infomap.min_size'? (the key was renamed)" in capsys.readouterr().err
    path = tmp_path / "cfg.yaml"
    path.write_text("intra:\n  clustering:\n    k1: 10\n")
    with pytest.raises(ValueError, match=r"did you mean 'camera_clustering.agglomerative.k1'"):
        resolve_config("intra", yaml_file=path)


def test_a_saved_config_yaml_of_the_old_clustering_keys_keeps_its_values():
    old = config_to_dict(resolve_config("inter", preset="synthetic"))
    old["clustering"] = {"method": "dbscan", "k": 15, "k1": 12, "k2": 3, "min_size": 2}
    cfg = resolve_config("inter", base=old)
    assert (cfg.clustering.method, cfg.clustering.dbscan.k1, cfg.clustering.dbscan.k2) == ("dbscan", 12, 3)
    assert cfg.clustering.infomap.min_size == 2


def test_camera_clustering_options_take_k1_k2_from_the_chosen_method():
    sets = {"camera_clustering.method": "dbscan", "camera_clustering.dbscan.k1": 9, "camera_clustering.dbscan.k2": 2}
    options = resolve_config("intra", sets=sets).camera_clustering.options()
    assert (options["method"], options["k1"], options["k2"], options["images_per_cluster"]) == ("dbscan", 9, 2, 5)
    assert IntraConfig().camera_clustering.options()["k1"] == 15  # agglomerative's


# ------------------------------------------------------------------------------------ registries


@pytest.fixture
def schedule():
    def halfway(epoch, total_epochs, *, start=1.0, end=0.0):
        return start if epoch < total_epochs // 2 else end

    register_schedule("halfway", halfway)
    yield "halfway"
    unregister_schedule("halfway")


def test_a_registered_schedule_is_a_config_choice_a_cli_choice_and_built(schedule):
    from labelrefine.recipes.calr.cli import build_parser

    cfg = resolve_config("inter", preset="synthetic", sets={"refinement.schedule": schedule})
    r = cfg.refinement
    assert get_schedule(r.schedule, **r.schedule_options())(4, 6) == 0.0
    assert build_parser().parse_args(["inter", "--schedule", schedule]).schedule == schedule
    with pytest.raises(ValueError, match="already a registered schedule"):
        register_schedule(schedule, SCHEDULES[schedule])


def test_an_unregistered_schedule_is_refused(schedule):
    unregister_schedule(schedule)
    try:
        with pytest.raises(ValueError, match=r"refinement.schedule must be one of .*got 'halfway'"):
            resolve_config("inter", sets={"refinement.schedule": schedule})
    finally:
        register_schedule(schedule, lambda epoch, total_epochs, **_: 1.0)


@pytest.fixture
def dataset(tmp_path):
    for name in ("0001_c1_a.jpg", "0001_c2_b.jpg", "0002_c1_c.jpg"):
        (tmp_path / name).touch()
    register_dataset("mine", read_folder)
    yield tmp_path
    unregister_dataset("mine")


def test_a_registered_dataset_is_a_config_choice_and_built(dataset):
    from labelrefine.recipes.calr.data import build_data

    assert "mine" in DATASETS and "mine" in dataset_choices()
    cfg = resolve_config("intra", sets={"data.dataset": "mine", "data.root": str(dataset)})
    data = build_data(cfg)
    assert (len(data.train_eval), data.num_cams, data.train_pids.tolist()) == (3, 2, [1, 1, 2])
    with pytest.raises(ValueError, match="lower case without"):
        register_dataset("My-Data", read_folder)


@pytest.fixture
def backbone():
    import torch

    from labelrefine.nn import ReIDNet

    def linear(model, input_dim):
        return ReIDNet(torch.nn.Flatten(), None, pool=None, bnneck=False)

    register_backbone("flat", linear)
    yield "flat"
    unregister_backbone("flat")


def test_a_registered_backbone_is_a_config_choice_and_built(backbone):
    import torch

    from labelrefine.nn import BACKBONES as RESNETS
    from labelrefine.recipes.calr.models import build_encoder

    assert set(RESNETS) <= set(BACKBONES)  # the names of labelrefine.nn.build_backbone are registered
    cfg = resolve_config("inter", sets={"model.backbone": backbone})
    encoder = build_encoder(cfg.model)
    assert isinstance(encoder.base, torch.nn.Flatten)
    unregister_backbone(backbone)
    try:
        with pytest.raises(ValueError, match=r"model.backbone must be one of .*got 'flat'"):
            resolve_config("inter", sets={"model.backbone": backbone})
    finally:
        register_backbone(backbone, lambda model, input_dim: None)
