"""The ablation benchmarks say what they are doing before the first (long) training run starts."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trainings, process spawns, the docs build: see CONTRIBUTING.md

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


class Started(Exception):
    """Raised instead of training: the test only needs what was printed before."""


@pytest.mark.parametrize("script", ["ablation_synthetic", "ablation_synthreid"])
def test_ablation_prints_progress_before_training(script, monkeypatch, capsys, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("yaml")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"_bench_{script}", BENCHMARKS / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def started(config):
        print("<training starts>", file=sys.stderr)
        raise Started

    if script == "ablation_synthetic":
        monkeypatch.setattr(module, "train_intra", started)
    else:  # the SynthReID runner (benchmarks/_common.py) imports the recipe when it is called
        import labelrefine.recipes.calr as calr

        monkeypatch.setattr(calr, "train_intra", started)
    # run() disables the recipe's logger; monkeypatch puts it back after the test
    monkeypatch.setattr(logging.getLogger("labelrefine.recipes.calr"), "disabled", False)
    with pytest.raises(Started):
        if script == "ablation_synthetic":
            module.run([1], 1, 20, tmp_path)
        else:
            module.synthreid_runs([1], {"baseline": {}}, tmp_path, {})
    before = capsys.readouterr().err.split("<training starts>")[0]
    assert "seed 1: stage 1 ..." in before
