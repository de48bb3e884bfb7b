"""Fidelity of the recipe to the paper: preset targets, the source of every setting, the authors' family,
and the options that used to be silently wrong (k clamped, --flip on vectors, stage-1 checkpoints)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("yaml")

from labelrefine.recipes import calr
from labelrefine.recipes.calr import evaluate, stages, train_inter, train_intra
from labelrefine.recipes.calr.config import DEFAULT_SOURCES, PRESETS, SETTINGS, get_preset, resolve_config

pytestmark = pytest.mark.slow  # trainings, process spawns, the docs build: see CONTRIBUTING.md

DOCS = Path(__file__).resolve().parents[1] / "docs"

# The CALR rows of Tables I and II, copied from shared/paper/calr-paper.md: (table, row, column) -> (mAP, rank-1)
PAPER_ROWS = {
    ("Table I", "CALR", "Market1501"): (82.8, 92.5),
    ("Table I", "CALR", "DukeMTMC-ReID"): (71.5, 82.7),
    ("Table I", "CALR", "MSMT17"): (44.2, 73.0),
    ("Table I", "CALR(IBN)", "Market1501"): (83.7, 93.3),
    ("Table I", "CALR(IBN)", "DukeMTMC-ReID"): (72.5, 85.2),
    ("Table I", "CALR(IBN)", "MSMT17"): (47.9, 75.9),
    ("Table I", "CALR(IBN+GeMPool)", "Market1501"): (84.5, 93.6),
    ("Table I", "CALR(IBN+GeMPool)", "DukeMTMC-ReID"): (74.2, 86.0),
    ("Table I", "CALR(IBN+GeMPool)", "MSMT17"): (50.4, 78.1),
    ("Table II", "CALR", "Veri776"): (42.9, 88.7),
    ("Table II", "CALR(IBN)", "Veri776"): (43.9, 91.2),
    ("Table II", "CALR(IBN+GEM)", "Veri776"): (44.8, 91.6),
}
COLUMNS = {"market1501": "Market1501", "dukemtmcreid": "DukeMTMC-ReID", "msmt17": "MSMT17", "veri": "Veri776"}
# backbone, ibn and pooling of each row (Sec. IV-A and the captions of Tables I and II); tau = 0.1 (Sec. IV-A)
ROW_MODEL = {
    "CALR": ("resnet50", False, "avg"),
    "CALR(IBN)": ("resnet50", True, "avg"),
    "CALR(IBN+GeMPool)": ("resnet50", True, "gem"),
    "CALR(IBN+GEM)": ("resnet50", True, "gem"),
}
SOURCE_KINDS = ("paper, ", "authors' code, ", "our choice: ")


def test_every_preset_target_is_a_row_of_the_paper():
    targeted = set()
    for name, preset in PRESETS.items():
        if preset.paper_table is None:
            assert preset.family in ("authors", "cpu") and preset.paper_map is None and preset.paper_rank1 is None
            continue
        dataset = preset.overrides["data.dataset"]
        key = (preset.paper_table, preset.paper_row, COLUMNS[dataset])
        assert key in PAPER_ROWS, name
        assert (preset.paper_map, preset.paper_rank1) == PAPER_ROWS[key], name
        assert preset.target == f"{key[0]}, {key[1]}, {key[2]}: mAP {preset.paper_map}, rank-1 {preset.paper_rank1}"
        for stage in ("intra", "inter"):
            cfg = resolve_config(stage, preset=name)
            assert (cfg.model.backbone, cfg.model.ibn, cfg.model.pooling) == ROW_MODEL[preset.paper_row], name
            assert (cfg.optim.temperature, cfg.optim.momentum) == (0.1, 0.2), name
        assert (
            resolve_config("intra", preset=name).optim.epochs,
            resolve_config("inter", preset=name).optim.epochs,
        ) == (20, 50)
        targeted.add((dataset, preset.paper_row))
    for dataset in COLUMNS:  # the CALR row and the IBN+GeM row of every dataset
        assert (dataset, "CALR") in targeted
        assert {(dataset, "CALR(IBN+GeMPool)"), (dataset, "CALR(IBN+GEM)")} & targeted


def test_every_setting_of_every_preset_has_a_source():
    keys = {setting.key for setting in SETTINGS}
    for setting in SETTINGS:
        for stage in setting.stages:
            assert f"{stage}.{setting.key}" in DEFAULT_SOURCES or setting.key in DEFAULT_SOURCES, setting.key
            assert setting.paper and setting.authors
    for name, preset in PRESETS.items():
        rows = calr.preset_settings(name)
        assert len(rows) == sum(len(s.stages) for s in SETTINGS)
        for stage, key, _value, source in rows:
            assert source.startswith(SOURCE_KINDS), (name, stage, key, source)
        # a value the preset sets carries the preset's own source, not the default's
        for stage in ("intra", "inter"):
            for key in set(preset.values(stage)) & keys:
                assert f"{stage}.{key}" in preset.sources or key in preset.sources, (name, stage, key)
        if preset.family == "authors":
            assert not any(source.startswith("paper") for *_, source in rows), name


def test_authors_family_is_the_released_configuration():
    for dataset in COLUMNS:
        inter = resolve_config("inter", preset=f"{dataset}-authors")
        intra = resolve_config("intra", preset=f"{dataset}-authors")
        for cfg in (intra, inter):
            assert (
                cfg.model.backbone,
                cfg.model.ibn,
                cfg.model.pooling,
                cfg.optim.temperature,
                cfg.optim.momentum,
            ) == (
                "resnet50",
                False,
                "gem",
                0.05,
                0.1,
            )
        assert (inter.refinement.rule, inter.refinement.schedule, inter.refinement.p_start) == (
            "reference",
            "constant",
            1.0,
        )
        assert (
            inter.alignment.epochs,
            inter.refinement.cacl_warmup,
            inter.clustering.infomap.min_size,
            inter.clustering.k,
            inter.clustering.infomap.k_includes_self,
        ) == (
            3,
            5,
            4,
            15,
            True,
        )
        assert inter.report_epoch == "best" and intra.optim.epochs == 25
        assert inter.optim.iters_per_epoch == (200 if dataset == "market1501" else 400)
    assert resolve_config("inter", preset="msmt17").optim.iters_per_epoch == 400
    assert resolve_config("inter", preset="market1501").optim.iters_per_epoch == 200


def test_docs_presets_page_holds_the_generated_table():
    page = (DOCS / "presets.md").read_text(encoding="utf-8")
    assert calr.settings_markdown() in page, "regenerate with `labelrefine-calr presets --markdown`"
    for preset in PRESETS.values():
        if preset.paper_table:
            assert f"| {preset.paper_map} | {preset.paper_rank1} |" in page


def test_cli_presets_markdown(capsys):
    assert calr.main(["presets", "--markdown"]) == 0
    assert capsys.readouterr().out.strip() == calr.settings_markdown()


# ------------------------------------------------------------------------------ options that were silent

SMALL = {
    "synthetic.ids": "20",
    "synthetic.cams": "2",
    "optim.epochs": "1",
    "optim.iters_per_epoch": "1",
    "runtime.progress": "false",
}


@pytest.mark.usefixtures("quiet_recipe_logger")
def test_k_above_n_minus_1_is_an_error_not_a_clamp(tmp_path, capsys):
    cfg = resolve_config(
        "inter", preset="synthetic", sets={**SMALL, "runtime.run_dir": str(tmp_path), "clustering.k": "100000"}
    )
    with pytest.raises(ValueError, match=r"k must be at most N - 1 = \d+ .*got k=100000"):
        train_inter(cfg)
    args = ["inter", "--preset", "synthetic", "--run-dir", str(tmp_path / "cli"), "--set", "clustering.k=100000"]
    assert calr.main([*args, "--no-progress", "--set", "synthetic.ids=20", "--set", "synthetic.cams=2"]) == 2
    assert "got k=100000" in capsys.readouterr().err
    dbscan = resolve_config(
        "inter",
        preset="synthetic",
        sets={
            **SMALL,
            "runtime.run_dir": str(tmp_path / "d"),
            "clustering.method": "dbscan",
            "clustering.dbscan.k1": "100000",
            "clustering.dbscan.k2": "4",
        },
    )
    with pytest.raises(
        ValueError, match=r"clustering.(dbscan.)?k1 must be at most N = \d+ .*clustering.method='dbscan', got k1=100000"
    ):
        train_inter(dbscan)


def test_infomap_gets_min_size_and_k_columns(monkeypatch):
    seen = {}

    def fake_infomap(graph, *, min_sim, min_size, rng, progress=None):
        seen.update(width=graph[0].shape[1], min_size=min_size, min_sim=min_sim)
        return np.zeros(graph[0].shape[0], dtype=np.int64)

    monkeypatch.setattr(stages, "infomap_cluster", fake_infomap)
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(40, 8)).astype(np.float32)
    for preset, width, min_size in (("market1501", 16, 1), ("market1501-authors", 15, 4)):
        cfg = resolve_config("inter", preset=preset, sets={"refinement.enabled": "false"})
        stages.InterTrainer(cfg).cluster(feats)
        assert (seen["width"], seen["min_size"], seen["min_sim"]) == (width, min_size, 0.5), preset


@pytest.mark.usefixtures("quiet_recipe_logger")
def test_eval_of_a_stage_1_run_says_it_scores_one_camera(tmp_path):
    sets = {**SMALL, "runtime.run_dir": str(tmp_path)}
    train_intra(resolve_config("intra", preset="synthetic", sets=sets))
    evaluation = {key: sets[key] for key in ("runtime.run_dir", "synthetic.ids", "synthetic.cams")}
    with pytest.warns(UserWarning, match=r"stage-1 \(intra\) checkpoint: .*one camera only \(camera index 1"):
        evaluate(resolve_config("eval", preset="synthetic", sets=evaluation))


@pytest.mark.usefixtures("quiet_recipe_logger")
def test_report_epoch_best_reports_and_saves_the_best_test_epoch(tmp_path, monkeypatch):
    scores = iter([0.5, 0.9, 0.3])  # the best epoch is neither the first nor the last

    def fake_evaluate(trainer):
        value = next(scores)
        return {"mAP": value, "rank1": value / 2}

    monkeypatch.setattr(stages.InterTrainer, "evaluate", fake_evaluate)
    sets = {**SMALL, "runtime.run_dir": str(tmp_path), "optim.epochs": "3", "refinement.local_labels": "per-camera"}
    result = train_inter(resolve_config("inter", preset="synthetic", sets={**sets, "report_epoch": "best"}))
    assert result.metrics == {"mAP": 0.9, "rank1": 0.45, "epoch": 1}
    assert [record["mAP"] for record in result.history] == [0.5, 0.9, 0.3]
    assert stages.torch.load(tmp_path / "best.pt", weights_only=False)["epoch"] == 1
    scores = iter([0.5, 0.9, 0.3])
    last = train_inter(
        resolve_config("inter", preset="synthetic", sets={**sets, "runtime.run_dir": str(tmp_path / "l")})
    )
    assert last.metrics == {"mAP": 0.3, "rank1": 0.15} and not (tmp_path / "l" / "best.pt").exists()
    assert get_preset("synthetic").source("inter", "report_epoch").startswith("our choice")
