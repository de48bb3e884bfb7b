"""labelrefine-calr: truncated or foreign files, Ctrl-C, a file as --run-dir, a missing torch."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("yaml")

from labelrefine.recipes.calr import main
from labelrefine.recipes.calr.data import import_authors_local_labels, load_local_labels

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("quiet_recipe_logger")]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            b"PK\x03\x04 a truncated zip",
            r"local_labels file .*bad.npz' cannot be read \(truncated or not a .npz file\)",
        ),
        (b"just text", r"local_labels file .*bad.npz' is not a .npz archive of arrays \(a pickle or a foreign file"),
    ],
)
def test_truncated_or_foreign_local_labels(tmp_path, content, match):
    (tmp_path / "bad.npz").write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_local_labels(tmp_path / "bad.npz", ["a"])


def test_local_labels_npz_without_the_arrays(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(ValueError, match=r"must be a .npz archive with arrays 'labels' and 'keys'"):
        load_local_labels(tmp_path / "other.npz", ["a"])
    np.save(tmp_path / "plain.npy", np.arange(3))
    (tmp_path / "plain.npy").rename(tmp_path / "plain.npz")  # an .npy file under an .npz name
    with pytest.raises(ValueError, match=r"must be a .npz archive with arrays 'labels' and 'keys'"):
        load_local_labels(tmp_path / "plain.npz", ["a"])


def test_truncated_authors_file(tmp_path):
    (tmp_path / "cam1.npy").write_bytes(b"\x93NUMPY\x01\x00 truncated")
    with pytest.raises(ValueError, match=r"local labels file .*cam1.npy' cannot be read as a .npy array"):
        import_authors_local_labels(tmp_path / "cam1.npy", ["a"])


def test_truncated_checkpoint_on_resume_and_eval(tmp_path, capsys):
    pytest.importorskip("torch")
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    args = ["--preset", "synthetic", "--run-dir", str(run), "--set", "synthetic.ids=20", "--set", "synthetic.cams=2"]
    assert main(["intra", *args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint '" in err and "cannot be read (truncated, or not written by torch.save)" in err
    assert "Traceback" not in err
    assert main(["eval", *args]) == 2
    assert "cannot be read (truncated, or not written by torch.save)" in capsys.readouterr().err


def test_ctrl_c_prints_the_resume_command(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    from labelrefine.recipes.calr import stages

    def interrupted(config, *, resume=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(stages, "train_inter", interrupted)
    run = tmp_path / "my run"
    assert main(["inter", "--preset", "synthetic", "--run-dir", str(run), "--no-refine"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert err[0] == (
        f"interrupted; continue the run with: labelrefine-calr inter --preset synthetic --run-dir '{run}' "
        "--no-refine --resume"
    )


def test_a_file_as_run_dir(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    assert main(["intra", "--preset", "synthetic", "--run-dir", str(tmp_path / "taken" / "sub")]) == 2
    err = capsys.readouterr().err
    assert "--run-dir" in err and "must be a folder, but" in err and "taken' is a file" in err


@pytest.mark.parametrize("existing", [False, True])
def test_an_unwritable_run_dir_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, existing):
    import tempfile

    run = tmp_path / "runs" / "r"
    if existing:
        run.mkdir(parents=True)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # the checks run as root in CI, where chmod does not stop writes: the file system refuses instead
    monkeypatch.setattr(tempfile, "TemporaryFile", denied)
    if not existing:
        monkeypatch.setattr(type(run), "mkdir", denied)
    assert main(["intra", "--preset", "synthetic", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert f"--run-dir '{run}' cannot be written (Permission denied): pass a folder you can write to" in err[0]


def test_intra_without_torch_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    assert main(["intra", "--preset", "synthetic", "--run-dir", str(tmp_path / "r")]) == 2
    assert 'pip install "labelrefine[torch]"' in capsys.readouterr().err
