"""The loop the base Trainer owns: loss terms by name, the build_data step, the five hook points, the
built-in hooks (removed or replaced) and hooks named in the config or on the command line."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("yaml")
pytest.importorskip("infomap")

from labelrefine.recipes.calr import (  # noqa: E402
    CheckpointHook,
    EvaluationHook,
    Hook,
    InterTrainer,
    LoggingHook,
    LRScheduleHook,
    main,
    resolve_config,
    train_inter,
)
from labelrefine.recipes.calr.hooks import load_hook  # noqa: E402
from labelrefine.recipes.calr.runtime import read_log  # noqa: E402

pytestmark = pytest.mark.usefixtures("quiet_recipe_logger")

SMALL = {
    "synthetic.ids": "30",
    "synthetic.cams": "2",
    "optim.epochs": "2",
    "optim.iters_per_epoch": "2",
    "runtime.progress": "false",
    "refinement.local_labels": "per-camera",
}


def _inter(tmp_path, **extra):
    return resolve_config("inter", preset="synthetic", sets={**SMALL, "runtime.run_dir": str(tmp_path), **extra})


class WithNormTerm(InterTrainer):
    """A fourth loss key: the trainer's ``loss``, ``loss_inter``, ``loss_domain`` and this one."""

    def losses(self, batch, outputs):
        out = super().losses(batch, outputs)
        out["loss_norm"] = 0.5 * outputs["embeddings"].float().pow(2).sum(1).mean()
        return out


def test_a_fourth_loss_term_is_summed_trained_and_logged(tmp_path):
    seen = []

    class Keys(Hook):
        def after_step(self, trainer, epoch, it, losses):
            seen.append(set(losses))

    trainer = WithNormTerm(_inter(tmp_path), hooks=[Keys()])
    result = trainer.fit()
    assert seen == [{"loss", "loss_inter", "loss_domain", "loss_norm"}] * 4
    for record in result.history:
        assert record["loss_norm"] > 0 and record["loss_domain"] > 0
        beta = trainer.domain_weight(record["epoch"])  # synthetic: alignment in the first epoch only
        total = record["loss_inter"] + beta * record["loss_domain"] + record["loss_norm"]
        assert record["loss"] == pytest.approx(total, rel=1e-5)
    assert "loss_norm" in (tmp_path / "train.log").read_text()


def test_loss_weights_weigh_a_term_and_a_loss_key_is_refused(tmp_path):
    class Unweighted(WithNormTerm):
        def loss_weights(self, epoch):
            return {"loss_domain": 0.0, "loss_norm": 2.0}

    record = Unweighted(_inter(tmp_path / "w", **{"optim.epochs": "1"})).fit().history[0]
    assert record["loss"] == pytest.approx(record["loss_inter"] + 2 * record["loss_norm"], rel=1e-5)

    class Clash(InterTrainer):
        def losses(self, batch, outputs):
            return {"loss": super().losses(batch, outputs)["loss_inter"]}

    with pytest.raises(ValueError, match="no key 'loss'.*got \\['loss'\\]"):
        Clash(_inter(tmp_path / "clash", **{"optim.epochs": "1"})).fit()


def test_build_data_is_a_step_a_subclass_overrides(tmp_path):
    built = []

    class CountingData(InterTrainer):
        def build_data(self):
            data = super().build_data()
            built.append(data)
            return data

    trainer = CountingData(_inter(tmp_path, **{"optim.epochs": "1"}))
    trainer.fit()
    assert len(built) == 1 and trainer.data is built[0]


class Points(Hook):
    def __init__(self, priority=50):
        self.calls = []
        self.priority = priority

    def before_train(self, trainer):
        assert trainer.optimizer is not None and trainer.net is not None  # the parts are built
        self.calls.append("before_train")

    def before_epoch(self, trainer, epoch):
        self.calls.append(f"before_epoch {epoch}")

    def after_step(self, trainer, epoch, it, losses):
        self.calls.append(f"after_step {epoch}.{it}")

    def after_epoch(self, trainer, epoch, record):
        self.calls.append(f"after_epoch {epoch} {sorted(k for k in ('seconds', 'mAP') if k in record)}")

    def after_train(self, trainer, result):
        self.calls.append(f"after_train {[r['epoch'] for r in result.history]}")


def test_before_train_and_after_train_frame_the_epochs_and_priority_orders_the_hooks(tmp_path):
    late, early = Points(), Points(priority=5)
    result = train_inter(_inter(tmp_path), hooks=[late, early])
    expected = ["before_train"]
    for epoch in range(2):
        expected += [f"before_epoch {epoch}", f"after_step {epoch}.0", f"after_step {epoch}.1"]
        expected += [f"after_epoch {epoch} ['mAP', 'seconds']"]
    assert late.calls == [*expected, "after_train [0, 1]"]
    # priority 5 runs before the built-in evaluation (20) and logging (30): no mAP, no seconds yet
    assert early.calls[4] == "after_epoch 0 []" and early.calls[-1] == "after_train [0, 1]"
    assert result.metrics is not None and "mAP" in result.history[-1]


def test_the_built_in_hooks_can_be_removed_or_replaced(tmp_path):
    trainer = InterTrainer(_inter(tmp_path / "no-ckpt"))
    assert [type(h) for h in trainer.hooks] == [LRScheduleHook, EvaluationHook, LoggingHook, CheckpointHook]
    trainer.hooks = [h for h in trainer.hooks if not isinstance(h, CheckpointHook)]
    trainer.fit()
    assert not (tmp_path / "no-ckpt" / "checkpoint.pt").exists() and len(read_log(tmp_path / "no-ckpt")) == 2

    class Records(Hook):  # in place of LoggingHook: the records in memory, nothing in log.jsonl
        def __init__(self):
            self.records = []

        def after_epoch(self, trainer, epoch, record):
            self.records.append(dict(record))

    mine = Records()
    result = InterTrainer(_inter(tmp_path / "bare"), hooks=[mine], default_hooks=False).fit()
    assert result.history == [] and result.metrics is None  # no logging, no evaluation
    assert [r["epoch"] for r in mine.records] == [0, 1] and "mAP" not in mine.records[0]
    assert [r["lr"] for r in mine.records] == [mine.records[0]["lr"]] * 2  # no schedule step either
    assert not (tmp_path / "bare" / "checkpoint.pt").exists()


HOOK_MODULE = """
import json
from labelrefine.recipes.calr import Hook


class EpochFile(Hook):
    def after_epoch(self, trainer, epoch, record):
        if trainer.session.is_main:
            with open(trainer.session.run_dir / "epochs.txt", "a") as handle:
                handle.write(f"{epoch}\\n")


class StopAfterFirst(Hook):
    def after_epoch(self, trainer, epoch, record):
        trainer.request_stop()


SHARED = EpochFile()
NOT_A_HOOK = 3


class NeedsArgument(Hook):
    def __init__(self, path):
        self.path = path
"""


@pytest.fixture
def hook_module(tmp_path, monkeypatch):
    name = f"user_hooks_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(HOOK_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def _cli(run_dir, *extra):
    args = ["inter", "--preset", "synthetic", "--run-dir", str(run_dir), "--no-progress"]
    args += ["--local-labels", "per-camera", "--set", "synthetic.ids=30", "--set", "synthetic.cams=2"]
    return [*args, "--set", "optim.epochs=2", "--set", "optim.iters_per_epoch=2", *extra]


def test_hooks_named_on_the_command_line_are_loaded(tmp_path, hook_module):
    run = tmp_path / "run"
    assert main(_cli(run, "--hook", f"{hook_module}:EpochFile", "--hook", f"{hook_module}:StopAfterFirst")) == 0
    assert (run / "epochs.txt").read_text() == "0\n"  # the class was instantiated, and the stop hook stopped
    saved = __import__("yaml").safe_load((run / "config.yaml").read_text())
    assert saved["runtime"]["hooks"] == [f"{hook_module}:EpochFile", f"{hook_module}:StopAfterFirst"]
    config = _inter(tmp_path / "instance", **{"runtime.hooks": f"{hook_module}:SHARED"})
    trainer = InterTrainer(config)
    assert trainer.hooks[-1] is sys.modules[hook_module].SHARED  # an instance is used as it is
    trainer.fit()
    assert (tmp_path / "instance" / "epochs.txt").read_text() == "0\n1\n"
    assert json.loads((tmp_path / "instance" / "log.jsonl").read_text().splitlines()[0])["epoch"] == 0


def test_a_bad_hook_path_is_reported_with_the_path(tmp_path, hook_module, capsys):
    assert main(_cli(tmp_path / "bad", "--hook", "no_such_module_xyz:Hook")) == 2
    err = capsys.readouterr().err
    assert "cannot import module 'no_such_module_xyz' of hook 'no_such_module_xyz:Hook'" in err
    assert "Traceback" not in err and not (tmp_path / "bad" / "log.jsonl").exists()
    with pytest.raises(ValueError, match=f"'{hook_module}:Missing' names nothing: .* no attribute 'Missing'"):
        load_hook(f"{hook_module}:Missing")
    with pytest.raises(ValueError, match=f"'{hook_module}:NOT_A_HOOK' must name a Hook subclass or a Hook instance"):
        load_hook(f"{hook_module}:NOT_A_HOOK")
    with pytest.raises(ValueError, match=f"'{hook_module}:NeedsArgument' must be instantiable without arguments"):
        load_hook(f"{hook_module}:NeedsArgument")
    with pytest.raises(ValueError, match="import paths 'package.module:Name', got 'nocolon'"):
        load_hook("nocolon")
    with pytest.raises(TypeError, match="hooks must be Hook instances, got int"):
        InterTrainer(_inter(tmp_path / "int"), hooks=[3]).fit()
