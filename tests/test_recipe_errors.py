"""Error messages of the recipe's run-time layer: devices, processes, run folders, checkpoints, plots."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("yaml")

from labelrefine.recipes.calr import (  # noqa: E402
    InterConfig,
    evaluate,
    plot_runs,
    resolve_config,
    spawn,
    train_inter,
    train_intra,
)
from labelrefine.recipes.calr.models import build_encoder  # noqa: E402
from labelrefine.recipes.calr.runtime import Session  # noqa: E402

pytestmark = pytest.mark.usefixtures("quiet_recipe_logger")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda(tmp_path):
    config = resolve_config("inter", sets={"runtime.device": "cuda", "runtime.run_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="runtime.device must be available: device='cuda' but torch sees no CUDA"):
        with Session(config):
            pass


def test_identities_per_step_must_split_over_the_processes(tmp_path):
    config = resolve_config("inter", sets={"runtime.device": "cpu", "runtime.run_dir": str(tmp_path)})
    session = Session(config)  # 16 identities per step
    session.world_size = 3
    with pytest.raises(ValueError, match="16 identities per step must split evenly over the 3 processes"):
        session._setup_device(torch)


def test_configs_of_the_wrong_stage_are_rejected():
    with pytest.raises(TypeError, match="config must be an InterConfig, got IntraConfig"):
        train_inter(resolve_config("intra"))
    with pytest.raises(TypeError, match="config must be an IntraConfig, got InterConfig"):
        train_intra(resolve_config("inter"))
    with pytest.raises(TypeError, match="config must be an EvalConfig, got InterConfig"):
        evaluate(resolve_config("inter"))


def test_resuming_a_run_of_the_other_stage(tmp_path):
    sets = {
        "runtime.run_dir": str(tmp_path),
        "synthetic.ids": "20",
        "synthetic.cams": "2",
        "optim.epochs": "1",
        "optim.iters_per_epoch": "1",
        "runtime.progress": "false",
    }
    train_intra(resolve_config("intra", preset="synthetic", sets=sets))
    (tmp_path / "config.yaml").unlink()  # so that the stage check, not the config comparison, speaks
    inter = resolve_config("inter", preset="synthetic", sets={**sets, "refinement.local_labels": str(tmp_path)})
    with pytest.raises(ValueError, match="holds a 'intra' run, not a 'inter' run"):
        train_inter(inter, resume=True)


def test_evaluation_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*checkpoint.pt"):
        evaluate(resolve_config("eval", preset="synthetic", sets={"runtime.run_dir": str(tmp_path)}))


def test_missing_pretrained_file(tmp_path):
    config = resolve_config("inter", preset="synthreid", sets={"model.pretrained": str(tmp_path / "w.pth")})
    with pytest.raises(FileNotFoundError, match="pretrained file not found: .*w.pth"):
        build_encoder(config.model)


def test_plot_errors(tmp_path):
    with pytest.raises(ValueError, match="run_dirs must name at least one run folder"):
        plot_runs([])
    with pytest.raises(FileNotFoundError, match="has no log.jsonl"):
        plot_runs([tmp_path])
    (tmp_path / "log.jsonl").write_text(json.dumps({"stage": "intra", "epoch": 0}) + "\n")
    with pytest.raises(ValueError, match="has no stage-2 \\(inter\\) records to plot"):
        plot_runs([tmp_path])


def test_spawn_arguments():
    with pytest.raises(ValueError, match="stage must be 'intra' or 'inter', got 'eval'"):
        spawn("eval", InterConfig(), 2)
    with pytest.raises(ValueError, match="nprocs must be a positive integer, got 0"):
        spawn("inter", InterConfig(), 0)
