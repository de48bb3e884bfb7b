"""Recipe configuration: paper defaults, presets, YAML / --set overrides, validation messages, CLI errors."""

from __future__ import annotations

import dataclasses
import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("yaml")

from hypothesis import given, settings
from hypothesis import strategies as st

from labelrefine.recipes import calr
from labelrefine.recipes.calr.config import (
    PRESETS,
    AlignmentConfig,
    CameraClusteringConfig,
    ClusteringConfig,
    DataConfig,
    DbscanConfig,
    EvalConfig,
    InfomapConfig,
    InterConfig,
    IntraConfig,
    ModelConfig,
    OptimConfig,
    RefinementConfig,
    RuntimeConfig,
    config_class,
    config_from_dict,
    config_to_dict,
    get_preset,
    parse_set,
    resolve_config,
    yaml_values,
)


def test_stage_defaults_are_the_papers():
    inter, intra = InterConfig(), IntraConfig()
    for cfg in (inter, intra):
        assert (cfg.model.backbone, cfg.model.ibn, cfg.model.pooling, cfg.data.height, cfg.data.width) == (
            "resnet50",
            False,
            "avg",
            256,
            128,
        )
        assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.lr_step, cfg.optim.lr_gamma) == (3.5e-4, 5e-4, 20, 0.1)
        assert (cfg.optim.temperature, cfg.optim.momentum) == (0.1, 0.2)  # paper, Sec. IV-A
    assert (inter.optim.epochs, inter.clustering.k, inter.clustering.min_sim, inter.alignment.beta) == (
        50,
        15,
        0.5,
        1.0,
    )
    assert (
        inter.optim.batch_size,
        inter.optim.num_instances,
        inter.optim.identities_per_step,
        inter.optim.iters_per_epoch,
    ) == (
        256,
        16,
        16,
        200,
    )
    assert (
        inter.refinement.schedule,
        inter.refinement.p_span,
        inter.refinement.p_start,
        inter.refinement.cacl_warmup,
    ) == ("cosine", 3.0, 1.0, 10)
    assert (inter.refinement.enabled, inter.alignment.enabled, inter.refinement.cacl, inter.clustering.method) == (
        True,
        True,
        True,
        "infomap",
    )
    infomap = inter.clustering.infomap
    assert (infomap.min_size, infomap.k_includes_self, inter.report_epoch) == (1, False, "last")
    assert (inter.clustering.dbscan.k1, inter.clustering.dbscan.k2) == (30, 6)
    assert (intra.camera_clustering.agglomerative.k1, intra.camera_clustering.agglomerative.k2) == (15, 4)
    assert (
        intra.optim.epochs,
        intra.camera_clustering.agglomerative.images_per_cluster,
        intra.camera_clustering.method,
    ) == (
        20,
        5,
        "agglomerative",
    )
    assert inter.runtime.run_dir == "runs/market1501/inter" and intra.runtime.run_dir == "runs/market1501/intra"


def test_presets_name_their_dataset():
    for name in PRESETS:
        cfg = resolve_config("inter", preset=name)
        assert cfg.preset == name and name.startswith(cfg.data.dataset)
    assert resolve_config("intra", preset="veri").data.height == 224
    assert resolve_config("inter", preset="veri-authors").data.width == 224
    assert {"synthreid", "synthetic"} <= set(PRESETS)
    assert get_preset("synthreid").paper_table is None


def test_preset_keys_of_one_stage_do_not_leak_into_another():
    intra = resolve_config("intra", preset="synthetic")
    inter = resolve_config("inter", preset="synthetic")
    assert (intra.optim.epochs, intra.optim.batch_size) == (3, 32)
    assert (inter.optim.epochs, inter.optim.batch_size, inter.alignment.epochs) == (6, 64, 1)
    assert not hasattr(intra, "alignment")


def test_resolution_order_defaults_preset_yaml_flags_set(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(
        "optim:\n  lr: 3.0e-4\n  epochs: 7\ninter:\n  alignment.beta: 0.3\nintra:\n  camera_clustering:\n"
        "    agglomerative:\n      images_per_cluster: 9\n"
    )
    overrides = {"optim.epochs": 9, "refinement.enabled": False}
    sets = {"optim.epochs": "11", "optim.lr": "1e-4"}
    cfg = resolve_config("inter", preset="veri", yaml_file=path, overrides=overrides, sets=sets)
    assert (cfg.data.height, cfg.alignment.beta, cfg.refinement.enabled, cfg.optim.epochs, cfg.optim.lr) == (
        224,
        0.3,
        False,
        11,
        1e-4,
    )
    assert overrides == {"optim.epochs": 9, "refinement.enabled": False} and sets == {
        "optim.epochs": "11",
        "optim.lr": "1e-4",
    }  # not modified
    intra = resolve_config("intra", yaml_file=path)
    assert (intra.camera_clustering.agglomerative.images_per_cluster, intra.optim.epochs, intra.optim.lr) == (
        9,
        7,
        3.0e-4,
    )


def test_yaml_scientific_notation_without_dot_is_a_number(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("optim:\n  lr: 3.5e-4\n  weight_decay: 5e-4\n")  # PyYAML reads these as strings
    cfg = resolve_config("inter", yaml_file=path)
    assert (cfg.optim.lr, cfg.optim.weight_decay) == (3.5e-4, 5e-4)


def test_set_values_are_parsed_by_field_type():
    cfg = resolve_config(
        "inter",
        sets=parse_set(
            [
                "refinement.enabled=no",
                "refinement.local_labels=null",
                "clustering.k=20",
                "alignment.beta=0.5",
                "runtime.run_dir=x",
            ]
        ),
    )
    assert (
        cfg.refinement.enabled,
        cfg.refinement.local_labels,
        cfg.clustering.k,
        cfg.alignment.beta,
        cfg.runtime.run_dir,
    ) == (False, None, 20, 0.5, "x")
    assert parse_set(["model.pretrained=a=b.pth"]) == {"model.pretrained": "a=b.pth"}


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: parse_set(["optim.lr"]), ValueError, r"--set expects key=value, got 'optim.lr'"),
        (
            lambda: resolve_config("inter", sets={"optim.lr_stpe": "3"}),
            ValueError,
            r"unknown config key 'optim.lr_stpe'.*did you mean 'optim.lr_step'",
        ),
        (  # an abbreviation in the same section beats a longer key that merely shares letters
            lambda: resolve_config("inter", sets={"optim.learning_rate": "3e-4"}),
            ValueError,
            r"unknown config key 'optim.learning_rate'.*did you mean 'optim.lr'\?",
        ),
        (
            lambda: resolve_config("inter", sets={"optim.batch": "64"}),
            ValueError,
            r"unknown config key 'optim.batch'.*did you mean 'optim.batch_size'\?",
        ),
        (  # a key of the flat config of earlier versions names its new place
            lambda: resolve_config("inter", sets={"p_schedule": "linear"}),
            ValueError,
            r"unknown config key 'p_schedule' for stage 'inter'; did you mean 'refinement.schedule'",
        ),
        (
            lambda: resolve_config("intra", sets={"alignment.beta": "1"}),
            ValueError,
            r"unknown config key 'alignment.beta' for stage 'intra'",
        ),
        (
            lambda: resolve_config("inter", sets={"optim.lr": "fast"}),
            ValueError,
            r"optim.lr must be a number, got 'fast'",
        ),
        (
            lambda: resolve_config("inter", sets={"refinement.enabled": "maybe"}),
            ValueError,
            r"refinement.enabled must be a bool, got 'maybe'",
        ),
        (
            lambda: resolve_config("inter", sets={"optim.epochs": "2.5"}),
            ValueError,
            r"optim.epochs must be an integer, got 2.5",
        ),
        (lambda: resolve_config("nope"), ValueError, r"stage must be one of 'intra', 'inter', 'eval'; got 'nope'"),
        (lambda: resolve_config("inter", preset="market"), ValueError, r"preset must be one of .*got 'market'"),
        (lambda: OptimConfig(lr=-1.0), ValueError, r"optim.lr must be a positive finite number, got -1.0"),
        (lambda: OptimConfig(momentum=1.5), ValueError, r"optim.momentum must be in \[0, 1\], got 1.5"),
        (lambda: OptimConfig(epochs=0), ValueError, r"optim.epochs must be in \[1, inf\], got 0"),
        (lambda: OptimConfig(epochs=2.5), TypeError, r"optim.epochs must be an integer, got 2.5"),
        (lambda: RefinementConfig(enabled="yes"), TypeError, r"refinement.enabled must be a bool, got 'yes'"),
        (lambda: DataConfig(dataset="market"), ValueError, r"data.dataset must be one of .*got 'market'"),
        (lambda: ModelConfig(backbone="vit"), ValueError, r"model.backbone must be one of .*got 'vit'"),
        (
            lambda: OptimConfig(batch_size=100),
            ValueError,
            r"optim.batch_size must be a multiple of optim.num_instances",
        ),
        (lambda: DbscanConfig(k1=5, k2=6), ValueError, r"clustering.dbscan.k2 must be in \[1, 5\], got 6"),
        (lambda: DbscanConfig(eps=1.0), ValueError, r"clustering.dbscan.eps must be in \(0, 1\), got 1.0"),
        (
            lambda: resolve_config("intra", sets={"camera_clustering.agglomerative.k1": 3}),
            ValueError,
            r"camera_clustering.agglomerative.k2 must be in \[1, 3\], got 4",
        ),
        (
            lambda: resolve_config("intra", sets={"camera_clustering.dbscan.eps": "1.5"}),
            ValueError,
            r"camera_clustering.dbscan.eps must be in \(0, 1\), got 1.5",
        ),
        (lambda: ClusteringConfig(dbscan={"k1": 3}), TypeError, r"clustering.dbscan must be a DbscanConfig"),
        (
            lambda: resolve_config("inter", sets={"clustering.dbscan.min_samples": 2.5}),
            TypeError,
            r"clustering.dbscan.min_samples must be an integer, got 2.5",
        ),
        (lambda: OptimConfig(lr_gamma=0.0), ValueError, r"optim.lr_gamma must be in \(0, 1\], got 0.0"),
        (
            lambda: RuntimeConfig(device="gpu0"),
            ValueError,
            r"runtime.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu0'",
        ),
        (
            lambda: ClusteringConfig(method="kmeans"),
            ValueError,
            r"clustering.method must be one of 'infomap', 'dbscan'",
        ),
        (lambda: RefinementConfig(schedule="step"), ValueError, r"refinement.schedule must be one of .*got 'step'"),
        (
            lambda: RefinementConfig(rule="best"),
            ValueError,
            r"refinement.rule must be one of 'cross-camera', 'algorithm1', 'all', .*'best'",
        ),
        (lambda: AlignmentConfig(beta=-0.1), ValueError, r"alignment.beta must be a finite number >= 0, got -0.1"),
        (lambda: AlignmentConfig(cam_lr_mult=0.0), ValueError, r"alignment.cam_lr_mult must be a positive finite"),
        (lambda: AlignmentConfig(epochs=-1), ValueError, r"alignment.epochs must be in \[0, inf\], got -1"),
        (lambda: InterConfig(stop_after_epoch=-2), ValueError, r"stop_after_epoch must be in \[0, inf\], got -2"),
        (lambda: RuntimeConfig(num_threads=0), ValueError, r"runtime.num_threads must be in \[1, inf\], got 0"),
        (lambda: InfomapConfig(min_size=-1), ValueError, r"clustering.infomap.min_size must be in \[0, inf\], got -1"),
        (lambda: InterConfig(report_epoch="first"), ValueError, r"report_epoch must be one of 'last', 'best'.*'first'"),
        (lambda: InterConfig(optim={"lr": 1.0}), TypeError, r"optim must be a OptimConfig, got dict"),
        (
            lambda: resolve_config("eval", preset="synthetic", sets={"flip": "true"}),
            ValueError,
            r"flip=True mirrors images left to right, but model.backbone='mlp' \(data.dataset='synthetic'\)",
        ),
        (
            lambda: InterConfig(model=ModelConfig(backbone="mlp")),
            ValueError,
            r"model.backbone='mlp' works on feature vectors",
        ),
        (
            lambda: InterConfig(data=DataConfig(dataset="synthetic")),
            ValueError,
            r"model.backbone must be 'mlp' for data.dataset='synthetic'",
        ),
        (
            lambda: CameraClusteringConfig(method="kmeans"),
            ValueError,
            r"camera_clustering.method must be one of 'agglomerative'",
        ),
        (lambda: DataConfig(root=3), TypeError, r"data.root must be a string or null, got 3"),
        (lambda: InterConfig(seed=None), TypeError, r"seed must be an integer, got None"),
    ],
)
def test_bad_config_values_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_yaml_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found: .*missing.yaml"):
        resolve_config("inter", yaml_file=tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [1,\n")
    with pytest.raises(ValueError, match="is not valid YAML"):
        resolve_config("inter", yaml_file=bad)
    seq = tmp_path / "seq.yaml"
    seq.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a mapping of keys, got list"):
        resolve_config("inter", yaml_file=seq)
    with pytest.raises(ValueError, match=r"unknown config key 'lerning_rate' in the config file"):
        yaml_values({"lerning_rate": 1}, "inter")
    with pytest.raises(ValueError, match=r"unknown config key 'alignment.beta' in section 'intra'"):
        yaml_values({"intra": {"alignment": {"beta": 1}}}, "intra")
    with pytest.raises(
        ValueError, match=r"unknown config key 'optim.weight_decy' in the config file.*'optim.weight_decay'"
    ):
        yaml_values({"optim": {"weight_decy": 1}}, "inter")
    with pytest.raises(ValueError, match=r"section 'inter' must be a mapping of keys, got 3"):
        yaml_values({"inter": 3}, "inter")


def test_configs_are_frozen_and_replace_validates():
    cfg = InterConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optim.lr = 1.0  # type: ignore[misc]
    other = cfg.replace(optim={"lr": "1e-3"}, refinement={"enabled": "false"})
    assert (other.optim.lr, other.refinement.enabled, cfg.optim.lr, cfg.refinement.enabled) == (
        1e-3,
        False,
        3.5e-4,
        True,
    )
    with pytest.raises(ValueError, match="optim.lr must be a positive finite number"):
        cfg.replace(optim={"lr": 0.0})
    assert cfg.replace(seed=3).seed == 3 and cfg.get("optim.lr") == 3.5e-4


@settings(max_examples=40, deadline=None)
@given(
    lr=st.floats(1e-6, 1.0),
    beta=st.floats(0.0, 10.0),
    k=st.integers(2, 200),
    refine=st.booleans(),
    local=st.one_of(st.none(), st.text("abc/._-", min_size=1, max_size=10)),
)
def test_round_trip_through_dict_and_set_text(lr, beta, k, refine, local):
    cfg = InterConfig(
        optim=OptimConfig(lr=lr),
        alignment=AlignmentConfig(beta=beta),
        clustering=ClusteringConfig(k=k),
        refinement=RefinementConfig(enabled=refine, local_labels=local),
    )
    assert config_from_dict(InterConfig, config_to_dict(cfg)) == cfg
    sets = {
        "optim.lr": repr(lr),
        "alignment.beta": repr(beta),
        "clustering.k": str(k),
        "refinement.enabled": str(refine),
    }
    if local is not None and local.lower() not in ("none", "null", "~"):
        sets["refinement.local_labels"] = local
    again = resolve_config("inter", sets=sets)
    assert (again.optim.lr, again.alignment.beta, again.clustering.k, again.refinement.enabled) == (lr, beta, k, refine)
    assert math.isfinite(again.optim.lr)


def test_eval_config_has_the_evaluation_options_only():
    cfg = EvalConfig(rerank=True)
    assert (cfg.rerank, cfg.flip, cfg.checkpoint, cfg.runtime.run_dir) == (True, False, None, "runs/market1501/eval")
    assert [f.name for f in dataclasses.fields(EvalConfig)] == [
        "preset",
        "data",
        "model",
        "runtime",
        "synthetic",
        "checkpoint",
        "rerank",
        "flip",
    ]


def test_no_config_class_has_more_than_25_fields():
    from labelrefine.recipes.calr import config as config_module

    for name in config_module.__all__:
        cls = getattr(config_module, name)
        if isinstance(cls, type) and dataclasses.is_dataclass(cls) and name.endswith("Config"):
            assert len(dataclasses.fields(cls)) <= 25, name


def test_a_saved_config_of_the_flat_layout_is_refused_with_the_new_key():
    with pytest.raises(ValueError, match=r"flat config of earlier versions: 'lr' is now 'optim.lr'"):
        resolve_config("eval", base={"lr": 1e-3, "dataset": "market1501"})
    saved = config_to_dict(resolve_config("inter", preset="synthetic"))
    assert resolve_config("eval", base=saved).model.backbone == "mlp"  # the training keys are skipped


def test_every_old_flat_key_has_a_new_home():
    from labelrefine.recipes.calr.config import RENAMED, STAGE_RENAMED, config_keys

    stages = ("intra", "inter", "eval")
    for old, new in RENAMED.items():  # through the per-stage table of the clustering sub-sections
        assert any(STAGE_RENAMED[stage].get(new, new) in config_keys(config_class(stage)) for stage in stages), old
    for stage, table in STAGE_RENAMED.items():
        keys = set(config_keys(config_class(stage)))
        assert set(table.values()) <= keys and keys.isdisjoint(table), stage
    assert {RENAMED["refine"], RENAMED["pivots"], RENAMED["synth_ids"]} == {
        "refinement.enabled",
        "refinement.rule",
        "synthetic.ids",
    }


# ---------------------------------------------------------------------------------------- CLI errors


def test_cli_presets_lists_paper_rows(capsys):
    assert calr.main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "target: Table I, CALR, Market1501: mAP 82.8, rank-1 92.5" in out
    assert "target: Table II, CALR(IBN+GEM), Veri776: mAP 44.8, rank-1 91.6" in out
    assert "market1501-authors: every setting and its source" in out
    # the targets the presets used to cite, none of which is a row of the paper
    for number in ("85.6", "93.9", "75.8", "86.6", "42.5", "71.2", "41.4"):
        assert number not in out
    assert calr.main(["presets", "veri-ibn-gem"]) == 0
    one = capsys.readouterr().out
    assert "inter model.pooling                 gem        paper, Table II row CALR(IBN+GEM) (GeM pooling)" in one
    assert "market1501" not in one


def test_cli_reports_a_missing_data_root_and_folder(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert calr.main(["intra", "--preset", "market1501", "--run-dir", run]) == 2
    assert "data.root is required for data.dataset='market1501'" in capsys.readouterr().err
    assert calr.main(["intra", "--preset", "market1501", "--data-root", str(tmp_path / "nope"), "--run-dir", run]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert calr.main(["inter", "--preset", "market1501", "--data-root", str(tmp_path / "empty"), "--run-dir", run]) == 2
    err = capsys.readouterr().err
    assert "labelrefine-calr: error:" in err and "Market-1501" in err


def test_cli_reports_bad_values(tmp_path, capsys):
    assert calr.main(["inter", "--preset", "synthetic", "--set", "optim.lr=-3", "--run-dir", str(tmp_path)]) == 2
    assert "lr must be a positive finite number, got -3.0" in capsys.readouterr().err
    assert calr.main(["inter", "--preset", "synthetic", "--set", "betta=1", "--run-dir", str(tmp_path)]) == 2
    assert "did you mean 'alignment.beta'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        calr.main(["inter", "--clustering", "kmeans"])


def test_runtime_hooks_take_a_list_or_comma_separated_text_and_survive_the_yaml_round_trip():
    import yaml

    from labelrefine.recipes.calr.cli import _overrides, build_parser
    from labelrefine.recipes.calr.config import config_to_dict

    cfg = resolve_config("inter", preset="synthetic", sets={"runtime.hooks": "a.b:C, d:E"})
    assert cfg.runtime.hooks == ("a.b:C", "d:E")
    assert config_from_dict(InterConfig, yaml.safe_load(yaml.safe_dump(config_to_dict(cfg)))) == cfg
    args = build_parser().parse_args(["inter", "--preset", "synthetic", "--hook", "x:Y", "--hook", "z:W"])
    assert _overrides(args)["runtime.hooks"] == ("x:Y", "z:W")
    with pytest.raises(ValueError, match="runtime.hooks entries must be import paths 'package.module:Name', got 'x'"):
        resolve_config("inter", preset="synthetic", sets={"runtime.hooks": "x"})
    with pytest.raises(TypeError, match=r"runtime.hooks must be a list of strings, got \[1\]"):
        resolve_config("inter", preset="synthetic", overrides={"runtime.hooks": [1]})
