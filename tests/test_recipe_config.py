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
from labelrefine.recipes._config import (
    PRESETS,
    EvalConfig,
    InterConfig,
    IntraConfig,
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
        assert (cfg.backbone, cfg.ibn, cfg.pooling, cfg.height, cfg.width) == ("resnet50", False, "avg", 256, 128)
        assert (cfg.lr, cfg.weight_decay, cfg.lr_step, cfg.lr_gamma) == (3.5e-4, 5e-4, 20, 0.1)
        assert (cfg.temperature, cfg.momentum) == (0.1, 0.2)  # paper, Sec. IV-A
    assert (inter.epochs, inter.k, inter.min_sim, inter.beta) == (50, 15, 0.5, 1.0)
    assert (inter.batch_size, inter.num_instances, inter.identities_per_step, inter.iters_per_epoch) == (
        256,
        16,
        16,
        200,
    )
    assert (inter.p_schedule, inter.p_span, inter.p_start, inter.cacl_warmup) == ("cosine", 3.0, 1.0, 10)
    assert (inter.refine, inter.align, inter.cacl, inter.clustering) == (True, True, True, "infomap")
    assert (inter.min_size, inter.k_includes_self, inter.report_epoch) == (1, False, "last")
    assert (intra.epochs, intra.images_per_cluster, intra.intra_method) == (20, 5, "agglomerative")
    assert inter.run_dir == "runs/market1501/inter" and intra.run_dir == "runs/market1501/intra"


def test_presets_name_their_commands_and_dataset():
    for name, preset in PRESETS.items():
        assert f"--preset {name}" in preset.commands
        cfg = resolve_config("inter", preset=name)
        assert cfg.preset == name and name.startswith(cfg.dataset)
    assert resolve_config("intra", preset="veri").height == 224
    assert resolve_config("inter", preset="veri-authors").width == 224
    assert {"synthreid", "synthetic"} <= set(PRESETS)
    assert get_preset("synthreid").paper_table is None
    assert "--checkpoint runs/market1501-authors/inter/best.pt" in get_preset("market1501-authors").commands


def test_preset_keys_of_one_stage_do_not_leak_into_another():
    intra = resolve_config("intra", preset="synthetic")
    inter = resolve_config("inter", preset="synthetic")
    assert (intra.epochs, intra.batch_size) == (3, 32)
    assert (inter.epochs, inter.batch_size, inter.align_epochs) == (6, 64, 1)
    assert not hasattr(intra, "align_epochs")


def test_resolution_order_defaults_preset_yaml_flags_set(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("lr: 3.0e-4\nepochs: 7\ninter:\n  beta: 0.3\nintra:\n  images_per_cluster: 9\n")
    overrides = {"epochs": 9, "refine": False}
    sets = {"epochs": "11", "lr": "1e-4"}
    cfg = resolve_config("inter", preset="veri", yaml_file=path, overrides=overrides, sets=sets)
    assert (cfg.height, cfg.beta, cfg.refine, cfg.epochs, cfg.lr) == (224, 0.3, False, 11, 1e-4)
    assert overrides == {"epochs": 9, "refine": False} and sets == {"epochs": "11", "lr": "1e-4"}  # not modified
    intra = resolve_config("intra", yaml_file=path)
    assert (intra.images_per_cluster, intra.epochs, intra.lr) == (9, 7, 3.0e-4)


def test_yaml_scientific_notation_without_dot_is_a_number(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("lr: 3.5e-4\nweight_decay: 5e-4\n")  # PyYAML reads these as strings
    cfg = resolve_config("inter", yaml_file=path)
    assert (cfg.lr, cfg.weight_decay) == (3.5e-4, 5e-4)


def test_set_values_are_parsed_by_field_type():
    cfg = resolve_config("inter", sets=parse_set(["refine=no", "local_labels=null", "k=20", "beta=0.5", "run_dir=x"]))
    assert (cfg.refine, cfg.local_labels, cfg.k, cfg.beta, cfg.run_dir) == (False, None, 20, 0.5, "x")
    assert parse_set(["pretrained=a=b.pth"]) == {"pretrained": "a=b.pth"}


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: parse_set(["lr"]), ValueError, r"--set expects key=value, got 'lr'"),
        (
            lambda: resolve_config("inter", sets={"lr_stpe": "3"}),
            ValueError,
            r"unknown config key 'lr_stpe'.*'lr_step'",
        ),
        (
            lambda: resolve_config("intra", sets={"beta": "1"}),
            ValueError,
            r"unknown config key 'beta' for stage 'intra'",
        ),
        (lambda: resolve_config("inter", sets={"lr": "fast"}), ValueError, r"lr must be a number, got 'fast'"),
        (lambda: resolve_config("inter", sets={"refine": "maybe"}), ValueError, r"refine must be a bool, got 'maybe'"),
        (lambda: resolve_config("inter", sets={"epochs": "2.5"}), ValueError, r"epochs must be an integer, got '2.5'"),
        (lambda: resolve_config("nope"), ValueError, r"stage must be one of 'intra', 'inter', 'eval'; got 'nope'"),
        (lambda: resolve_config("inter", preset="market"), ValueError, r"preset must be one of .*got 'market'"),
        (lambda: InterConfig(lr=-1.0), ValueError, r"lr must be a positive finite number, got -1.0"),
        (lambda: InterConfig(momentum=1.5), ValueError, r"momentum must be in \[0, 1\], got 1.5"),
        (lambda: InterConfig(epochs=0), ValueError, r"epochs must be in \[1, inf\], got 0"),
        (lambda: InterConfig(epochs=2.5), TypeError, r"epochs must be an integer, got 2.5"),
        (lambda: InterConfig(refine="yes"), TypeError, r"refine must be a bool, got 'yes'"),
        (lambda: InterConfig(dataset="market"), ValueError, r"dataset must be one of .*got 'market'"),
        (lambda: InterConfig(backbone="vit"), ValueError, r"backbone must be one of .*got 'vit'"),
        (lambda: InterConfig(batch_size=100), ValueError, r"batch_size must be a multiple of num_instances"),
        (lambda: InterConfig(k1=5, k2=6), ValueError, r"k2 must be in \[1, 5\], got 6"),
        (lambda: InterConfig(eps=1.0), ValueError, r"eps must be in \(0, 1\), got 1.0"),
        (lambda: InterConfig(lr_gamma=0.0), ValueError, r"lr_gamma must be in \(0, 1\], got 0.0"),
        (
            lambda: InterConfig(device="gpu0"),
            ValueError,
            r"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu0'",
        ),
        (lambda: InterConfig(clustering="kmeans"), ValueError, r"clustering must be one of 'infomap', 'dbscan'"),
        (lambda: InterConfig(p_schedule="step"), ValueError, r"p_schedule must be one of .*got 'step'"),
        (lambda: InterConfig(beta=-0.1), ValueError, r"beta must be a finite number >= 0, got -0.1"),
        (lambda: InterConfig(cam_lr_mult=0.0), ValueError, r"cam_lr_mult must be a positive finite number"),
        (lambda: InterConfig(align_epochs=-1), ValueError, r"align_epochs must be in \[0, inf\], got -1"),
        (lambda: InterConfig(stop_after_epoch=-2), ValueError, r"stop_after_epoch must be in \[0, inf\], got -2"),
        (lambda: InterConfig(num_threads=0), ValueError, r"num_threads must be in \[1, inf\], got 0"),
        (lambda: InterConfig(min_size=-1), ValueError, r"min_size must be in \[0, inf\], got -1"),
        (lambda: InterConfig(report_epoch="first"), ValueError, r"report_epoch must be one of 'last', 'best'.*'first'"),
        (
            lambda: resolve_config("eval", preset="synthetic", sets={"flip": "true"}),
            ValueError,
            r"flip=True mirrors images left to right, but backbone='mlp' \(dataset='synthetic'\)",
        ),
        (lambda: InterConfig(backbone="mlp"), ValueError, r"backbone='mlp' works on feature vectors"),
        (lambda: InterConfig(dataset="synthetic"), ValueError, r"backbone must be 'mlp' for dataset='synthetic'"),
        (lambda: IntraConfig(intra_method="kmeans"), ValueError, r"intra_method must be one of"),
        (lambda: InterConfig(data_root=3), TypeError, r"data_root must be a string or null, got 3"),
        (lambda: InterConfig(pretrained=None, seed=None), TypeError, r"seed must be an integer, got None"),
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
    with pytest.raises(ValueError, match=r"unknown config key 'beta' in section 'intra'"):
        yaml_values({"intra": {"beta": 1}}, "intra")
    with pytest.raises(ValueError, match=r"section 'inter' must be a mapping of keys, got 3"):
        yaml_values({"inter": 3}, "inter")


def test_configs_are_frozen_and_replace_validates():
    cfg = InterConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]
    other = cfg.replace(lr="1e-3", refine="false")
    assert (other.lr, other.refine, cfg.lr, cfg.refine) == (1e-3, False, 3.5e-4, True)
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        cfg.replace(lr=0.0)


@settings(max_examples=40, deadline=None)
@given(
    lr=st.floats(1e-6, 1.0),
    beta=st.floats(0.0, 10.0),
    k=st.integers(2, 200),
    refine=st.booleans(),
    local=st.one_of(st.none(), st.text("abc/._-", min_size=1, max_size=10)),
)
def test_round_trip_through_dict_and_set_text(lr, beta, k, refine, local):
    cfg = InterConfig(lr=lr, beta=beta, k=k, refine=refine, local_labels=local)
    assert config_from_dict(InterConfig, config_to_dict(cfg)) == cfg
    sets = {"lr": repr(lr), "beta": repr(beta), "k": str(k), "refine": str(refine)}
    if local is not None and local.lower() not in ("none", "null", "~"):
        sets["local_labels"] = local
    again = resolve_config("inter", sets=sets)
    assert (again.lr, again.beta, again.k, again.refine) == (lr, beta, k, refine)
    assert math.isfinite(again.lr)


def test_eval_config_has_the_evaluation_options():
    cfg = EvalConfig(rerank=True)
    assert (cfg.rerank, cfg.flip, cfg.checkpoint, cfg.run_dir) == (True, False, None, "runs/market1501/eval")


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
    assert "inter pooling            gem        paper, Table II row CALR(IBN+GEM) (GeM pooling)" in one
    assert "market1501" not in one


def test_cli_reports_a_missing_data_root_and_folder(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert calr.main(["intra", "--preset", "market1501", "--run-dir", run]) == 2
    assert "data_root is required for dataset='market1501'" in capsys.readouterr().err
    assert calr.main(["intra", "--preset", "market1501", "--data-root", str(tmp_path / "nope"), "--run-dir", run]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert calr.main(["inter", "--preset", "market1501", "--data-root", str(tmp_path / "empty"), "--run-dir", run]) == 2
    err = capsys.readouterr().err
    assert "labelrefine-calr: error:" in err and "Market-1501" in err


def test_cli_reports_bad_values(tmp_path, capsys):
    assert calr.main(["inter", "--preset", "synthetic", "--set", "lr=-3", "--run-dir", str(tmp_path)]) == 2
    assert "lr must be a positive finite number, got -3.0" in capsys.readouterr().err
    assert calr.main(["inter", "--preset", "synthetic", "--set", "betta=1", "--run-dir", str(tmp_path)]) == 2
    assert "did you mean 'beta'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        calr.main(["inter", "--clustering", "kmeans"])
